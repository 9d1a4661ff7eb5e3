"""`bench`: the talkbench command line. Heavy imports happen inside the commands, so `bench ls` is instant."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.cli_args import build_parser

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
                if args.speed:
                    from benchmark.tables.speed import run_dirs_for, speed_table, speed_terminal

                    print(speed_terminal(speed_table(table, run_dirs_for(table, found))))
        path: str | Path  # the html report's files, or the file written
        if args.format == "html":
            from benchmark.tables import write_report

            files = write_report(
                args.runs, ds, args.out, published=published, bootstrap=_bootstrap(args), speed=args.speed
            )
            path = f"{files.html} and {files.markdown.name} (+ {len(files.assets)} files in {files.html.stem}_assets/)"
        else:
            boot = _bootstrap(args)
            path = write_leaderboard(
                found,
                ds,
                args.format,
                args.out,
                published=published,
                standalone=args.standalone,
                bootstrap=boot,
                speed=args.speed,  # speed blocks under each table (benchmark/tables/speed.py)
            )
            if args.speed and args.format == "csv":
                from benchmark.tables.speed import speed_csv_path

                path = f"{path} and {speed_csv_path(path)}"
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


def cmd_health(args: argparse.Namespace) -> int:
    from benchmark.config import compose, default_protocol
    from benchmark.runner import health_for_config
    from benchmark.tables.health import health_terminal

    protocol = args.protocol or default_protocol(args.dataset) or "standard"
    limit = [f"run.limit={int(args.limit)}"] if args.limit is not None else []
    cfg = compose(None, args.dataset, None, [*args.overrides, *limit], protocol=protocol)
    health = health_for_config(cfg, score_gt=True)
    if health is None:
        raise SystemExit("no GT row to check the judges on")
    print(health_terminal(health))
    return 0


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

    from benchmark.generate import generate_video, load_generator, resolve_checkpoint, synthetic_warning

    params: dict[str, Any] = {}
    for item in args.params:
        if "=" not in item:
            raise ValueError(f"model param {item!r} must look like key=value")
        key, _, value = item.partition("=")
        params[key] = OmegaConf.from_dotlist([f"v={value}"]).v
    module = load_generator(args.model, args.checkpoint, args.preset, params, runs=args.runs)
    path = resolve_checkpoint(args.checkpoint, args.runs) if args.checkpoint is not None else None
    warning = synthetic_warning(path, args.face)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
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
        face_index=args.face_index,
        paste=args.paste,
        seed=args.seed,
        stream=args.stream,
        first_window=args.first_window,
    )
    print(report.summary())
    return 0


def cmd_stress(args: argparse.Namespace) -> int:
    from benchmark.config import default_protocol
    from benchmark.distributed import run_device
    from benchmark.stress import load_stress_config, stress

    args.protocol = args.protocol or default_protocol(args.dataset) or "standard"  # the Table 1 rule
    extra = [f"run.limit={int(args.limit)}"] if args.limit is not None else []
    extra += [f"run.out_dir={args.runs}"] if args.runs is not None else []
    args.overrides = [*args.overrides, *extra]
    cfg = _compose(args, model=False)
    names = [n.strip() for n in args.perturbations.split(",") if n.strip()] if args.perturbations else None
    outcome = stress(
        cfg,
        names=names,
        config=load_stress_config(args.config),
        reports_dir=args.reports,
        out=args.out,
        device=run_device(cfg),
    )
    print(f"protocol {outcome.protocol.name} ({outcome.protocol.hash[:8]}): records in {outcome.folder}")
    for path in outcome.files:
        print(f"wrote {path}")
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from benchmark.perf import run_perf

    if args.run is not None or args.runs is not None:
        import torch

        from benchmark.perf import run_model_perf
        from benchmark.perf.speed import SpeedSettings, model_run_dirs

        dirs = [args.run] if args.run is not None else model_run_dirs(args.runs, args.dataset)
        if not dirs:
            raise SystemExit(f"no model runs under {args.runs}" + (f" for {args.dataset!r}" if args.dataset else ""))
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        settings = SpeedSettings(
            args.clips, args.repeats, device, not args.no_e2e, args.reports, args.samplers, args.threads, args.frames
        )
        return 1 if run_model_perf(dirs, args.only, settings) else 0
    run_perf(args.only, args.out, quick=args.quick)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from benchmark.study.commands import study_command  # the human study (benchmark/study, docs/study.md)

    return study_command(args)


DATA_COMMANDS = {"prepare": cmd_data_prepare, "check": cmd_data_check}

COMMANDS = {
    "ls": cmd_ls,
    "validate": cmd_validate,
    "run": cmd_run,
    "evaluate": cmd_evaluate,
    "leaderboard": cmd_leaderboard,
    "table1": cmd_table1,
    "health": cmd_health,
    "calibrate": cmd_calibrate,
    "data": cmd_data,
    "weights": cmd_weights,
    "perf": cmd_perf,
    "stress": cmd_stress,  # metric stress cards (benchmark/stress.py)
    "generate": cmd_generate,
    "study": cmd_study,
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
