"""The arguments of every `bench` command (benchmark/cli.py runs them). Nothing heavy is imported here."""

from __future__ import annotations

import argparse
from pathlib import Path


def _add_run_args(p: argparse.ArgumentParser, model: bool = True) -> None:
    if model:
        p.add_argument("--model", required=True, help="model name (bench ls models)")
    p.add_argument("--dataset", default="synthetic", help="dataset name (bench ls datasets)")
    p.add_argument("--preset", choices=["tiny", "paper"], default=None, help="hyperparameter preset (default tiny)")
    p.add_argument("--experiment", default=None, help="an overlay from configs/experiments/")
    p.add_argument("--protocol", default=None, help="evaluation protocol from configs/protocols/ (bench ls protocols)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. trainer.max_steps=100")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="talkbench: talking-face generation benchmark")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ls", help="list registered models, datasets, metrics or presets")
    p.add_argument("what", choices=["models", "datasets", "metrics", "presets", "layouts", "protocols"])

    p = sub.add_parser("validate", help="compose a config and build its objects without training")
    _add_run_args(p)

    p = sub.add_parser("run", help="train (or load) -> generate the test split -> evaluate -> record")
    _add_run_args(p)

    p = sub.add_parser("evaluate", help="score a folder of mp4 files made by any method")
    p.add_argument("--videos", required=True, type=Path, help="folder of .mp4 files named by test clip")
    p.add_argument("--name", required=True, help="row name in the leaderboard")
    p.add_argument("--mapping", type=Path, default=None, help="JSON {clip_id: file name} when names differ")
    p.add_argument("--overwrite", action="store_true", help="replace the scores a --name holds for another folder")
    _add_run_args(p, model=False)

    p = sub.add_parser("table1", help="Diffused Heads Table 1: train/load every model, generate, score, write tables")
    p.add_argument("--dataset", default="synthetic", help="crema | lrw | synthetic | any registered dataset")
    p.add_argument("--models", nargs="*", default=None, help="rows (default: every registered generator)")
    p.add_argument("--preset", choices=["tiny", "paper"], default=None, help="hyperparameter preset (default tiny)")
    p.add_argument("--protocol", default=None, help="default: dh_table1_<dataset> when it exists, else standard")
    p.add_argument("--limit", type=int, default=None, help="score only the first N test clips (smoke run)")
    p.add_argument("--formats", default="csv,latex,markdown,html", help="comma-separated: csv,latex,markdown,html")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where the table files go")
    _add_bootstrap_args(p)
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every row")

    p = sub.add_parser("health", help="how well each judge of a protocol does its job on the GT clips")
    p.add_argument("--dataset", default="synthetic", help="dataset name (bench ls datasets)")
    p.add_argument("--protocol", default=None, help="default: dh_table1_<dataset> when it exists, else standard")
    p.add_argument("--limit", type=int, default=None, help="only the first N test clips (as bench table1 --limit)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")

    p = sub.add_parser("leaderboard", help="tables over recorded runs")
    p.add_argument("--dataset", default=None)
    p.add_argument("--format", choices=["csv", "latex", "markdown", "html"], default="markdown")
    p.add_argument("--standalone", action="store_true", help="latex: a whole document that compiles on its own")
    p.add_argument("--out", type=Path, default=None, help="file to write (default reports/leaderboard_<dataset>.*)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="where run directories are")
    p.add_argument("--published", action="store_true", help="show the paper's published rows beside ours")
    p.add_argument("--speed", action="store_true", help="speed blocks per device under each table (bench perf --run)")
    _add_bootstrap_args(p)

    p = sub.add_parser("calibrate", help="train evaluator networks (SyncNet, ...) on a corpus and register them")
    p.add_argument("--seconds", type=float, default=None, help="SyncNet training budget (default configs/metrics)")
    p.add_argument(
        "--what", nargs="*", default=None, help="calibrations to run (default: all; see benchmark.calibrate)"
    )
    _add_run_args(p, model=False)

    p = sub.add_parser("data", help="corpus tools")
    dsub = p.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("synth", help="write the synthetic corpus in a real layout")
    s.add_argument("--layout", required=True, choices=["lrw", "crema", "voxceleb2"])
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--clips", type=int, default=None, help="number of clips (default 240)")
    s.add_argument("--speakers", type=int, default=None)
    s.add_argument("--size", type=int, default=None, choices=[96, 128])
    s.add_argument("--difficulty", default=None, choices=["easy", "medium", "hard"])
    s.add_argument("--workers", type=int, default=2)
    s = dsub.add_parser("prepare", help="decode, landmark, crop a real corpus and write its manifest (resumable)")
    s.add_argument("--dataset", required=True, help="lrw | crema | voxceleb2 (bench ls datasets)")
    s.add_argument("--root", type=Path, default=None, help="the corpus folder (else dataset.root / its env var)")
    s.add_argument("--out", type=Path, default=None, help="prepared folder (default dataset.prepared)")
    s.add_argument("--workers", type=int, default=None, help="processes (default dataset.prepare.workers)")
    s.add_argument("--strict", action="store_true", help="exit with an error when any clip is rejected")
    s.add_argument("overrides", nargs="*", help="dataset.* overrides, e.g. dataset.prepare.landmarks=truth")
    s = dsub.add_parser("check", help="verify a prepared corpus against its manifest and print its card")
    s.add_argument("--dataset", required=True)
    s.add_argument("--root", type=Path, default=None)
    s.add_argument("--out", type=Path, default=None, help="prepared folder (default dataset.prepared)")
    s.add_argument("overrides", nargs="*")

    p = sub.add_parser("weights", help="registered evaluator / model weights")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    wsub.add_parser("list", help="show registered weights")
    w = wsub.add_parser("import", help="check a checkpoint against its network and register it")
    w.add_argument("file", type=Path)
    w.add_argument("--as", dest="name", required=True, help="a known name (`bench weights list`)")
    w.add_argument("--allow-unofficial", action="store_true", help="accept a file whose sha256 is not the official")
    w = wsub.add_parser("verify", help="re-check registered files against their sha256")
    w.add_argument("names", nargs="*")
    w = wsub.add_parser("fetch", help="download an official checkpoint (sha256-checked) and import it")
    w.add_argument("name")
    w.add_argument("--url", default=None, help="another location of the same file (mirror, file://)")

    p = sub.add_parser("generate", help="lip-sync / animate any face video or image to any audio file (mp4 out)")
    p.add_argument("--model", required=True, help="wav2lip | wav2lip_gan | lipgan | diffused_heads | vasa | static")
    p.add_argument("--face", required=True, type=Path, help="face video or still image")
    p.add_argument("--audio", required=True, type=Path, help="any audio (or video) file ffmpeg reads")
    p.add_argument("--checkpoint", default=None, help="weights name, checkpoint file, or a run (folder or name)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="where a run given by name is (run.out_dir)")
    p.add_argument("--out", required=True, type=Path, help="output .mp4")
    p.add_argument("--face-index", type=int, default=0, help="the K-th face by box area, largest first (default 0)")
    p.add_argument(
        "--paste",
        nargs="?",
        const="feather",
        default=None,
        choices=["feather", "hard"],
        help="face-box models: feathered (default) or hard paste; head models: put the head back into the photo",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the head models' sampling")
    p.add_argument("--stream", action="store_true", help="vasa: write window by window, report first-frame latency")
    p.add_argument("--first-window", type=int, default=None, help="vasa: frames of the first window (default W)")
    p.add_argument("--detector", default="auto", help="auto | dlib | full | fixed | landmarks (default auto)")
    p.add_argument("--box", type=int, nargs=4, default=None, metavar=("X1", "Y1", "X2", "Y2"), help="for fixed")
    p.add_argument("--landmarks", default=None, help="[T,68,2] .npy/.npz for the landmarks detector")
    p.add_argument("--pads", type=int, nargs=4, default=None, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"))
    p.add_argument("--nosmooth", action="store_true", help="no temporal smoothing of the face boxes")
    p.add_argument("--preset", choices=["tiny", "paper"], default=None, help="network width of the checkpoint")
    p.add_argument("--chunk-frames", type=int, default=128, help="frames held in memory at once")
    p.add_argument("params", nargs="*", help="model params key=value, e.g. audio_features=mel")

    p = sub.add_parser("stress", help="score the GT clips under controlled perturbations: the metric stress card")
    p.add_argument("--limit", type=int, default=None, help="only the first N test clips (as bench table1 --limit)")
    p.add_argument("--perturbations", default=None, help="comma-separated names of configs/stress.yaml (default all)")
    p.add_argument("--runs", type=Path, default=None, help="run folders (GT row, leaderboard): default run.out_dir")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where the card files go")
    p.add_argument("--out", type=Path, default=None, help="the card's path without suffix (.md/.html/.json added)")
    p.add_argument("--config", type=Path, default=None, help="the perturbation list (default configs/stress.yaml)")
    _add_run_args(p, model=False)

    p = sub.add_parser("perf", help="speed benchmarks, side by side with baselines")
    p.add_argument("--only", nargs="*", default=None, help="benchmark names to run")
    p.add_argument("--out", type=Path, default=Path("reports/perf.json"))
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--run", type=Path, default=None, help="a run folder: measure its model (--only speed|dh_samplers)")
    p.add_argument("--runs", type=Path, default=None, help="measure every model run under this folder (--dataset)")
    p.add_argument("--dataset", default=None, help="with --runs: only this dataset's runs")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when present, else cpu)")
    p.add_argument("--clips", type=int, default=2, help="test clips measured (from the start of the test list)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes after the warm-up (the median is kept)")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end (decode .. encode) timing")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where dh_samplers writes its report")
    p.add_argument("--samplers", default=None, help="dh_samplers: method:steps,... (default: the issue's nine)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads torch uses while measuring")
    p.add_argument("--frames", type=int, default=None, help="dh_samplers: cut each clip to its first N frames")
    _add_study_args(sub)
    return parser


def _add_bootstrap_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ci", type=float, default=0.95, help="bootstrap interval level, also 1 - the marks' p threshold")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals, marks by value)")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resamples")


def _add_study_args(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`bench study create | serve | report`: the human realness study (benchmark/study, docs/study.md)."""
    p = sub.add_parser("study", help="human realness study (Diffused Heads Table 2): create, serve, report")
    ssub = p.add_subparsers(dest="study_command", required=True)
    s = ssub.add_parser("create", help="pick clips from finished runs, copy them under opaque names, add checks")
    s.add_argument("--dataset", required=True, help="the runs' dataset")
    s.add_argument("--methods", required=True, help="comma-separated run names (or labels / model names)")
    s.add_argument("--real", type=int, default=0, help="real test clips of the corpus")
    s.add_argument("--per-method", type=int, required=True, help="generated clips per method")
    s.add_argument("--seed", type=int, default=0, help="seed of the selection and the clip tokens")
    s.add_argument("--attention", type=int, default=2, help="attention checks (clearly broken clips)")
    s.add_argument("--runs", type=Path, default=Path("runs"), help="where run directories are")
    s.add_argument("--study", type=Path, default=None, help="the study folder (default studies/<dataset>_seed<S>)")
    s = ssub.add_parser("serve", help="the rating web page; votes go to <study>/votes.sqlite")
    s.add_argument("--study", type=Path, required=True, help="a folder made by `bench study create`")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s = ssub.add_parser("report", help="judged-real %% (Wilson), opinion scores, Fleiss' kappa from the votes")
    s.add_argument("--study", type=Path, required=True)
    s.add_argument("--format", choices=["csv", "latex", "markdown", "html"], default="markdown")
    s.add_argument("--out", type=Path, default=None, help="file to write (default reports/study_<folder>.*)")
    s.add_argument("--ci", type=float, default=0.95, help="confidence level of the intervals")
