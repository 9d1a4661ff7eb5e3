"""`bench`: the talkbench command line. Heavy imports happen inside the commands, so `bench ls` is instant."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from benchmark.results import Results
    from benchmark.tables.intervals import BootstrapSettings
    from data.corpus import PreparedCorpus

# OpenMP threads that wait for work by spinning take the cores another job needs: on a 2-core machine shared with
# another 2-thread job, a training step ran 12x slower than idle with libgomp's default spin (300,000) and 3.5x
# with 30,000, which costs nothing idle (docs/runs.md). Set before torch loads its OpenMP runtime; the computation,
# and so every number, is unchanged. A user's own OMP_WAIT_POLICY / GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "30000")


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

    p = sub.add_parser("leaderboard", help="tables over recorded runs")
    p.add_argument("--dataset", default=None)
    p.add_argument("--format", choices=["csv", "latex", "markdown", "html"], default="markdown")
    p.add_argument("--standalone", action="store_true", help="latex: a whole document that compiles on its own")
    p.add_argument("--out", type=Path, default=None, help="file to write (default reports/leaderboard_<dataset>.*)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="where run directories are")
    p.add_argument("--published", action="store_true", help="show the paper's published rows beside ours")
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

    p = sub.add_parser("generate", help="lip-sync any face video or image to any audio file (mp4 out)")
    p.add_argument("--model", required=True, help="wav2lip | wav2lip_gan | lipgan")
    p.add_argument("--face", required=True, type=Path, help="face video or still image")
    p.add_argument("--audio", required=True, type=Path, help="any audio (or video) file ffmpeg reads")
    p.add_argument("--checkpoint", required=True, help="weights name, official checkpoint, or a run's model.pt")
    p.add_argument("--out", required=True, type=Path, help="output .mp4")
    p.add_argument("--detector", default="auto", help="auto | dlib | full | fixed | landmarks (default auto)")
    p.add_argument("--box", type=int, nargs=4, default=None, metavar=("X1", "Y1", "X2", "Y2"), help="for fixed")
    p.add_argument("--landmarks", default=None, help="[T,68,2] .npy/.npz for the landmarks detector")
    p.add_argument("--pads", type=int, nargs=4, default=None, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"))
    p.add_argument("--nosmooth", action="store_true", help="no temporal smoothing of the face boxes")
    p.add_argument("--preset", choices=["tiny", "paper"], default=None, help="network width of the checkpoint")
    p.add_argument("--chunk-frames", type=int, default=128, help="frames held in memory at once")
    p.add_argument("params", nargs="*", help="model params key=value, e.g. audio_features=mel")

    p = sub.add_parser("perf", help="speed benchmarks, side by side with baselines")
    p.add_argument("--only", nargs="*", default=None, help="benchmark names to run")
    p.add_argument("--out", type=Path, default=Path("reports/perf.json"))
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    return parser


def cmd_ls(args: argparse.Namespace) -> int:
    from benchmark import registry

    if args.what == "metrics":
        from metrics import METRICS

        width = max(map(len, METRICS))
        for name, spec in sorted(METRICS.items()):
            print(f"{name:{width}s} {spec.direction:9s} {spec.description}")
    elif args.what == "presets":
        print("tiny   CPU-sized networks and schedules (minutes)\npaper  the papers' hyperparameters")
    elif args.what == "protocols":
        from benchmark.config import load_protocol, protocol_names

        for name in protocol_names():
            proto = load_protocol(name)
            print(f"{name:22s} {proto.get('dataset') or 'any':10s} {proto.get('description', '')}")
    elif args.what == "layouts":
        from data.layouts import LAYOUTS

        for name, layout in LAYOUTS.items():
            print(f"{name:10s} {layout.example}")
    elif args.what == "models":
        # components (trained for the models that need them) and baselines are not methods of their own
        for name in registry.models().names():
            kind = registry.models().declared(name, "kind")  # the class attribute (models/base.py), read unimported
            print(f"{name:16s} {kind if kind != 'model' else ''}".rstrip())
    else:
        for name in registry.datasets().names():
            print(name)
    return 0


def _compose(args: argparse.Namespace, model: bool = True) -> DictConfig:
    from benchmark.config import compose

    return compose(
        args.model if model else None, args.dataset, args.preset, args.overrides, args.experiment, args.protocol
    )


def cmd_validate(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from benchmark import registry, runner
    from benchmark.scoring import metric_groups
    from benchmark.train import build_untrained

    cfg = _compose(args)
    corpus = runner.build_corpus(cfg)
    module = build_untrained(cfg)
    metric_classes = [registry.import_target(t).__name__ for t in metric_groups(list(cfg.metrics.names))]
    n_params = sum(p.numel() for p in module.parameters())
    print(OmegaConf.to_yaml(cfg))
    print(
        f"ok: model {cfg.model.name!r} ({type(module).__name__}, {n_params:,} parameters), "
        f"dataset {corpus.name!r} at {corpus.root}, metrics {', '.join(metric_classes)}"
    )
    return 0


def _print_board(cfg: DictConfig, res: Results) -> None:
    from benchmark.results import find_results
    from benchmark.tables import leaderboard_frame, render_terminal

    found = [r for _, r in find_results(Path(cfg.run.out_dir) / cfg.dataset.name)]
    tables = [t for t in leaderboard_frame(found, cfg.dataset.name) if t.protocol_hash == res.protocol.hash]
    for table in tables:
        print(render_terminal(table))


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark import runner
    from benchmark.train import run_dir_of

    cfg = _compose(args)
    res = runner.run(cfg)
    if res is not None:
        print(f"results: {run_dir_of(cfg) / 'results.json'}")
        _print_board(cfg, res)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from benchmark import runner, scoring
    from benchmark.distributed import eval_group, run_device, run_lock
    from benchmark.features import video_name
    from benchmark.train import run_dir_of

    cfg = _compose(args, model=False)
    cfg.run.name = args.name
    corpus = runner.build_corpus(cfg)
    group = eval_group()  # under torchrun every process scores its share of the clips
    if not group.main:
        group.barrier()  # rank 0 writes the corpus and calibrates first
    corpus.ensure()
    clips = scoring.test_clips(cfg, corpus)
    mapping = _read_mapping(args.mapping) if args.mapping else None
    videos = scoring.match_videos(args.videos, clips, mapping)
    if not videos:
        expected = ", ".join(video_name(c.clip_id) for c in clips[:3])
        raise FileNotFoundError(
            f"{args.videos}: none of its videos matches a test clip of {cfg.dataset.name!r} (expected names like "
            f"{expected}, or the clip's base name); name the files after the clip ids or pass --mapping FILE.json "
            "({clip_id: file name}). Nothing was scored."
        )
    missing = len(clips) - len(videos)
    print(
        f"matched {len(videos)} of {len(clips)} test clips"
        + (f" ({missing} missing: counted as failed)" if missing else "")
    )
    scoring.prepare_evaluators(cfg, corpus)
    if group.main:
        group.barrier()
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = scoring.now()
    notes = [f"videos: {args.videos.resolve()}", *scoring.resampling_notes(videos)]
    with run_lock(run_dir):
        if group.main:
            scoring.claim_run_dir(run_dir, args.videos, overwrite=args.overwrite)
        res = scoring.evaluate_videos(
            cfg,
            corpus,
            clips,
            videos,
            run_dir,
            lambda: scoring.run_info(cfg, "external", args.name, args.name, started, notes=notes),
            group=group,
            device=run_device(cfg),
        )
    if res is None:
        return 0  # rank > 0: its clips are in rank 0's record
    print(f"results: {run_dir / 'results.json'}")
    _print_board(cfg, res)
    return 0


def _read_mapping(path: Path) -> dict[str, str]:
    try:
        mapping = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--mapping {path}: not a readable JSON file ({err})") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise ValueError(f"--mapping {path}: expected a JSON object {{clip_id: file name}}")
    return mapping


def _add_bootstrap_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ci", type=float, default=0.95, help="bootstrap interval level, also 1 - the marks' p threshold")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals, marks by value)")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resamples")


def _bootstrap(args: argparse.Namespace) -> BootstrapSettings | None:
    from benchmark.tables.intervals import BootstrapSettings

    if args.bootstrap == 0:
        return None
    return BootstrapSettings(level=args.ci, replicates=args.bootstrap, seed=args.bootstrap_seed)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark.results import find_results
    from benchmark.tables import leaderboard_frame, render_terminal, write_leaderboard

    found = [r for _, r in find_results(args.runs)]
    if args.dataset:
        found = [r for r in found if r.run.dataset == args.dataset]
    if not found:
        raise SystemExit(f"no results under {args.runs}" + (f" for dataset {args.dataset!r}" if args.dataset else ""))
    published = None
    if args.published:
        published = Path(__file__).resolve().parents[1] / "reports" / "reference" / "diffused_heads_table1.csv"
    datasets = [args.dataset] if args.dataset else sorted({r.run.dataset for r in found})
    for ds in datasets:
        if args.format == "markdown":  # the other formats are files to take elsewhere: say where they went
            for table in leaderboard_frame(found, ds, bootstrap=_bootstrap(args)):
                print(render_terminal(table))
        path: str | Path  # the html report's files, or the file written
        if args.format == "html":
            from benchmark.tables import write_report

            files = write_report(args.runs, ds, args.out, published=published, bootstrap=_bootstrap(args))
            path = f"{files.html} and {files.markdown.name} (+ {len(files.assets)} files in {files.html.stem}_assets/)"
        else:
            boot = _bootstrap(args)
            path = write_leaderboard(
                found, ds, args.format, args.out, published=published, standalone=args.standalone, bootstrap=boot
            )
        print(f"wrote {path}")
    return 0


def cmd_table1(args: argparse.Namespace) -> int:
    from benchmark.table1 import table1

    out = table1(
        args.dataset,
        args.models,
        preset=args.preset,
        protocol=args.protocol,
        limit=args.limit,
        overrides=args.overrides,
        reports_dir=args.reports,
        formats=[f.strip() for f in args.formats.split(",") if f.strip()],
        bootstrap=_bootstrap(args),
    )
    print(f"protocol {out.protocol}: {len(out.rows)} rows" + (f" ({len(out.reused)} reused)" if out.reused else ""))
    for path in out.files:
        print(f"wrote {path}")
    for name, why in out.failed.items():
        print(f"FAILED {name}: {why}", file=sys.stderr)
    return 1 if out.failed else 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from benchmark import runner
    from benchmark.calibrate import CALIBRATORS, run_calibration
    from benchmark.registry import suggest

    for name in args.what or []:
        if name not in CALIBRATORS:
            raise suggest("calibration", name, CALIBRATORS)  # before the corpus is written
    cfg = _compose(args, model=False)
    if args.seconds is not None:
        cfg.metrics.calibrate.seconds = args.seconds
    corpus = runner.build_corpus(cfg)
    corpus.ensure()
    for name in args.what or list(CALIBRATORS):
        entry = run_calibration(name, cfg, corpus)
        print(f"[{name}] registered {entry.name} (sha256 {entry.sha256})")
        print(json.dumps(entry.meta.get("report", {}), indent=2))
    return 0


def _prepared_corpus(args: argparse.Namespace) -> PreparedCorpus:
    from benchmark import runner
    from benchmark.config import compose
    from data.corpus import PreparedCorpus

    overrides = list(args.overrides)
    if args.root is not None:
        overrides.append(f"dataset.root={args.root.expanduser().resolve()}")
    if args.out is not None:
        overrides.append(f"dataset.prepared={args.out.expanduser().resolve()}")
    cfg = compose(None, args.dataset, None, overrides)
    corpus = runner.build_corpus(cfg)
    if not isinstance(corpus, PreparedCorpus):
        raise SystemExit(f"dataset {args.dataset!r} is not a real corpus to prepare (try: bench data synth)")
    return corpus


def cmd_data_prepare(args: argparse.Namespace) -> int:
    corpus = _prepared_corpus(args)
    summary = corpus.prepare(progress=True, strict=args.strict, workers=args.workers)
    print(summary.format())
    leaks = corpus.speaker_overlap()
    for pair, speakers in leaks.items():
        print(f"  warning: speakers in both {pair}: {', '.join(speakers[:10])}{' ...' if len(speakers) > 10 else ''}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from data.manifest import INFO
    from data.prepare import check_prepared

    corpus = _prepared_corpus(args)
    card = Path(__file__).resolve().parents[1] / "data" / "cards" / f"{corpus.card or corpus.name}.yaml"
    if card.exists():
        print(card.read_text())
    problems = check_prepared(corpus.prepared, corpus.root, corpus.split_dir)
    if (corpus.prepared / INFO).exists():
        counts = json.loads((corpus.prepared / INFO).read_text())["counts"]
        print(f"prepared: {corpus.prepared}")
        print(json.dumps(counts, indent=1))
        leaks = corpus.speaker_overlap()
        print("speaker overlap between splits: " + (json.dumps(leaks) if leaks else "none"))
    for p in problems:
        print(f"problem: {p}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command in DATA_COMMANDS:
        return DATA_COMMANDS[args.data_command](args)
    from data.synthetic.writer import synth_main

    overrides = {
        k: v
        for k, v in {
            "n_clips": args.clips,
            "n_speakers": args.speakers,
            "size": args.size,
            "difficulty": args.difficulty,
        }.items()
        if v is not None
    }
    summary = synth_main(args.layout, args.out, seed=args.seed, workers=args.workers, **overrides)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from benchmark import weights

    if args.weights_command == "list":
        print(weights.format_list())
    elif args.weights_command == "import":
        entry = weights.import_weights(args.file, args.name, allow_unofficial=args.allow_unofficial)
        print(f"registered {entry.name}: {entry.file} sha256 {entry.sha256}")
    elif args.weights_command == "fetch":
        entry = weights.fetch(args.name, args.url)
        print(f"registered {entry.name}: {entry.file} sha256 {entry.sha256}")
    else:
        lines = weights.verify(args.names)
        for line in lines:
            print(line)
        return 1 if any(line.startswith("FAILED") for line in lines) else 0
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from benchmark.generate import generate_video, load_generator

    params: dict[str, Any] = {}
    for item in args.params:
        if "=" not in item:
            raise ValueError(f"model param {item!r} must look like key=value")
        key, _, value = item.partition("=")
        params[key] = OmegaConf.from_dotlist([f"v={value}"]).v
    module = load_generator(args.model, args.checkpoint, args.preset, params)
    report = generate_video(
        module,
        args.face,
        args.audio,
        args.out,
        detector=args.detector,
        box=args.box,
        landmarks=args.landmarks,
        pads=args.pads,
        smooth=not args.nosmooth,
        chunk_frames=args.chunk_frames,
    )
    print(report.summary())
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from benchmark.perf import run_perf

    run_perf(args.only, args.out, quick=args.quick)
    return 0


DATA_COMMANDS = {"prepare": cmd_data_prepare, "check": cmd_data_check}

COMMANDS = {
    "ls": cmd_ls,
    "validate": cmd_validate,
    "run": cmd_run,
    "evaluate": cmd_evaluate,
    "leaderboard": cmd_leaderboard,
    "table1": cmd_table1,
    "calibrate": cmd_calibrate,
    "data": cmd_data,
    "weights": cmd_weights,
    "perf": cmd_perf,
    "generate": cmd_generate,
}


def _quiet_libraries() -> None:
    """Keep Lightning's banners and advice out of the output users read (--debug shows everything)."""
    import warnings

    # (Lightning's loggers are quieted by the runner after Lightning is imported: its import resets them)
    # intended: frozen evaluators / experts stay in eval mode while the model around them trains
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r".*treespec.*")
    warnings.filterwarnings("ignore", message=r"The number of training batches .* is smaller than the logging")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("TALKBENCH_DEBUG") == "1"
    if debug:
        os.environ["TALKBENCH_DEBUG"] = "1"  # the DDP child processes inherit it
    else:
        _quiet_libraries()
    try:
        return COMMANDS[args.command](args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        print("(run with --debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
