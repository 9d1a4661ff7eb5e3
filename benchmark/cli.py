"""`bench`: the talkbench command line. Heavy imports happen inside the commands, so `bench ls` is instant."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _add_run_args(p: argparse.ArgumentParser, model: bool = True) -> None:
    if model:
        p.add_argument("--model", required=True, help="model name (bench ls models)")
    p.add_argument("--dataset", default="synthetic", help="dataset name (bench ls datasets)")
    p.add_argument("--preset", choices=["tiny", "paper"], default=None, help="hyperparameter preset (default tiny)")
    p.add_argument("--experiment", default=None, help="an overlay from configs/experiments/")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. trainer.max_steps=100")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="talkbench: talking-face generation benchmark")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ls", help="list registered models, datasets, metrics or presets")
    p.add_argument("what", choices=["models", "datasets", "metrics", "presets", "layouts"])

    p = sub.add_parser("validate", help="compose a config and build its objects without training")
    _add_run_args(p)

    p = sub.add_parser("run", help="train (or load) -> generate the test split -> evaluate -> record")
    _add_run_args(p)

    p = sub.add_parser("evaluate", help="score a folder of mp4 files made by any method")
    p.add_argument("--videos", required=True, type=Path, help="folder of .mp4 files named by test clip")
    p.add_argument("--name", required=True, help="row name in the leaderboard")
    p.add_argument("--mapping", type=Path, default=None, help="JSON {clip_id: file name} when names differ")
    _add_run_args(p, model=False)

    p = sub.add_parser("leaderboard", help="tables over recorded runs")
    p.add_argument("--dataset", default=None)
    p.add_argument("--format", choices=["csv", "latex", "markdown"], default="markdown")
    p.add_argument("--out", type=Path, default=None, help="file to write (default reports/leaderboard_<dataset>.*)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="where run directories are")
    p.add_argument("--published", action="store_true", help="show the paper's published rows beside ours")

    p = sub.add_parser("calibrate", help="train the evaluation SyncNet on a corpus and register its weights")
    p.add_argument("--seconds", type=float, default=None, help="training budget (default configs/metrics)")
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

    p = sub.add_parser("weights", help="registered evaluator / model weights")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    wsub.add_parser("list", help="show registered weights")
    w = wsub.add_parser("import", help="check a checkpoint against its network and register it")
    w.add_argument("file", type=Path)
    w.add_argument("--as", dest="name", required=True, help="syncnet_v2 | lipsync_expert | wav2lip")
    w = wsub.add_parser("verify", help="re-check registered files against their sha256")
    w.add_argument("names", nargs="*")

    p = sub.add_parser("perf", help="speed benchmarks, side by side with baselines")
    p.add_argument("--only", nargs="*", default=None, help="benchmark names to run")
    p.add_argument("--out", type=Path, default=Path("reports/perf.json"))
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    return parser


def cmd_ls(args) -> int:
    from benchmark import registry

    if args.what == "metrics":
        from metrics import METRICS

        for name, spec in sorted(METRICS.items()):
            print(f"{name:12s} {spec.direction:9s} {spec.description}")
    elif args.what == "presets":
        print("tiny   CPU-sized networks and schedules (minutes)\npaper  the papers' hyperparameters")
    elif args.what == "layouts":
        from data.layouts import LAYOUTS

        for name, layout in LAYOUTS.items():
            print(f"{name:10s} {layout.example}")
    else:
        reg = {"models": registry.models, "datasets": registry.datasets}[args.what]()
        for name in reg.names():
            print(name)
    return 0


def _compose(args, model=True):
    from benchmark.config import compose

    return compose(args.model if model else None, args.dataset, args.preset, args.overrides, args.experiment)


def cmd_validate(args) -> int:
    from omegaconf import OmegaConf

    from benchmark import registry, runner

    cfg = _compose(args)
    corpus = runner.build_corpus(cfg)
    module = runner.build_untrained(cfg)
    metric_classes = [registry.import_target(t).__name__ for t in runner.metric_groups(list(cfg.metrics.names))]
    n_params = sum(p.numel() for p in module.parameters())
    print(OmegaConf.to_yaml(cfg))
    print(
        f"ok: model {cfg.model.name!r} ({type(module).__name__}, {n_params:,} parameters), "
        f"dataset {corpus.name!r} at {corpus.root}, metrics {', '.join(metric_classes)}"
    )
    return 0


def _print_board(cfg, res) -> None:
    from benchmark.leaderboard import leaderboard_frame, render_terminal
    from benchmark.results import find_results

    found = [r for _, r in find_results(Path(cfg.run.out_dir) / cfg.dataset.name)]
    tables = [t for t in leaderboard_frame(found, cfg.dataset.name) if t.protocol_hash == res.protocol.hash]
    for table in tables:
        print(render_terminal(table))


def cmd_run(args) -> int:
    from benchmark import runner

    cfg = _compose(args)
    res = runner.run(cfg)
    if res is not None:
        print(f"results: {runner.run_dir_of(cfg) / 'results.json'}")
        _print_board(cfg, res)
    return 0


def cmd_evaluate(args) -> int:
    from benchmark import runner

    cfg = _compose(args, model=False)
    cfg.run.name = args.name
    corpus = runner.build_corpus(cfg)
    corpus.ensure()
    clips = runner.test_clips(cfg, corpus)
    mapping = json.loads(args.mapping.read_text()) if args.mapping else None
    videos = runner.match_videos(args.videos, clips, mapping)
    missing = len(clips) - len(videos)
    print(
        f"matched {len(videos)} of {len(clips)} test clips"
        + (f" ({missing} missing: counted as failed)" if missing else "")
    )
    evaluator = runner.sync_evaluator(cfg, corpus) if runner._needs_sync(cfg) else None
    run_dir = runner.run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = runner._now()
    protocol = runner.protocol_for(cfg, corpus, evaluator, len(clips))
    runner.evaluate_gt(cfg, corpus, clips, evaluator, protocol)
    res = runner.evaluate_folder(
        cfg,
        corpus,
        videos,
        run_dir,
        lambda: runner._run_info(
            cfg, "external", args.name, args.name, started, notes=[f"videos: {args.videos.resolve()}"]
        ),
        evaluator,
        clips,
    )
    print(f"results: {run_dir / 'results.json'}")
    _print_board(cfg, res)
    return 0


def cmd_leaderboard(args) -> int:
    from benchmark.leaderboard import leaderboard_frame, render_terminal, write_leaderboard
    from benchmark.results import find_results

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
        for table in leaderboard_frame(found, ds):
            print(render_terminal(table))
        path = write_leaderboard(found, ds, args.format, args.out, published=published)
        print(f"wrote {path}")
    return 0


def cmd_calibrate(args) -> int:
    from benchmark import runner
    from benchmark.calibrate import calibrate_corpus

    cfg = _compose(args, model=False)
    if args.seconds is not None:
        cfg.metrics.calibrate.seconds = args.seconds
    corpus = runner.build_corpus(cfg)
    corpus.ensure()
    entry = calibrate_corpus(cfg, corpus)
    print(f"registered {entry.name} (sha256 {entry.sha256})")
    print(json.dumps(entry.meta.get("report", {}), indent=2))
    return 0


def cmd_data(args) -> int:
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


def cmd_weights(args) -> int:
    from benchmark import weights

    if args.weights_command == "list":
        print(weights.format_list())
    elif args.weights_command == "import":
        entry = weights.import_weights(args.file, args.name)
        print(f"registered {entry.name}: {entry.file} sha256 {entry.sha256}")
    else:
        for line in weights.verify(args.names):
            print(line)
    return 0


def cmd_perf(args) -> int:
    from benchmark.perf import run_perf

    run_perf(args.only, args.out, quick=args.quick)
    return 0


COMMANDS = {
    "ls": cmd_ls,
    "validate": cmd_validate,
    "run": cmd_run,
    "evaluate": cmd_evaluate,
    "leaderboard": cmd_leaderboard,
    "calibrate": cmd_calibrate,
    "data": cmd_data,
    "weights": cmd_weights,
    "perf": cmd_perf,
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
