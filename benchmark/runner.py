"""The loop every `bench run` goes through: corpus -> evaluators -> train or load -> generate -> score -> record.

Run directory: <run.out_dir>/<dataset>/<run.name>/ with config.yaml, checkpoints/, model.pt, generated/*.mp4,
results.json and samples.jsonl. Each stage has its home: `benchmark.train` (build, train or load, resumable
checkpoints), `benchmark.generation` (the test split, batched, on the run's device), `benchmark.scoring` (metrics,
GT row, resume, aggregate, record). Finished work is reused at every stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from benchmark import registry
from benchmark.config import save_config
from benchmark.distributed import EvalGroup, eval_group, log, run_device, run_lock
from benchmark.generation import generate_split, generation_stamp
from benchmark.results import Results
from benchmark.scoring import evaluate_videos, now, prepare_evaluators, run_info, test_clips
from benchmark.train import model_class, run_dir_of, train_or_load
from data.corpus import LayoutCorpus
from data.pairs import real_counterpart

if TYPE_CHECKING:
    from benchmark.tables.health import Health


def build_corpus(cfg: DictConfig, model: str | None = None) -> LayoutCorpus:
    """The corpus of `cfg.dataset`, serving the framing `model` (default: the run's model) trains and generates
    on: a real corpus's prepared crop is the model's `crop` (Wav2Lip: 96 px face box, Diffused Heads: 128 px
    aligned head...), whatever the dataset's default."""
    d: dict[str, Any] = OmegaConf.to_container(cfg.dataset, resolve=True)  # type: ignore[assignment]  # a section
    cls: type[LayoutCorpus] = registry.datasets().get(d.pop("target"))
    name = model if model is not None else cfg.model.get("name")
    crop = getattr(model_class(name), "crop", None) if name else None
    if crop and "crop" in d:
        d["crop"] = crop
    return cls(**d)


def run(cfg: DictConfig) -> Results | None:
    """`bench run`: train (or load) the model, generate the test split, score it and the GT, record."""
    started = now()
    corpus = build_corpus(cfg)
    # launched by torchrun: every process is here already; rank 0 writes the corpus and calibrates first.
    # (Lightning's own launcher starts the other processes later, at fit time, when both are done.)
    group = eval_group()
    if not group.main:
        group.barrier()
    if group.main:
        corpus.ensure()
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        return _run_locked(cfg, corpus, group, run_dir, started)


def _run_locked(cfg: DictConfig, corpus: LayoutCorpus, group: EvalGroup, run_dir: Path, started: str) -> Results | None:
    if group.main:
        save_config(cfg, run_dir / "config.yaml")
    # loading weights is cheap, and a file that does not fit must fail before anything is calibrated
    load_first = bool(cfg.run.checkpoint)
    if load_first:
        module, ckpt = train_or_load(cfg, corpus)
    prepare_evaluators(cfg, corpus)
    if group.main:
        group.barrier()
    if not load_first:
        module, ckpt = train_or_load(cfg, corpus)
    group = eval_group()  # the processes training started (if any) stay for generation and scoring
    if cfg.model.get("kind") == "component":
        # a network other models need (the SyncNet expert, a first stage): trained or loaded, nothing to generate
        if group.main:
            log(f"[train] {cfg.run.name} is a component of other models: {ckpt.get('path') or ckpt.get('source')}")
        return None
    device = run_device(cfg)
    module.to(device)  # Lightning's teardown leaves a trained module on the CPU
    clips = test_clips(cfg, corpus)
    log(f"[generate] {cfg.run.name}: {len(clips)} test clips on {device} -> {run_dir / 'generated'}")
    videos = generate_split(
        cfg,
        module,
        clips,
        run_dir / "generated",
        progress=bool(cfg.run.progress),
        stamp=generation_stamp(cfg, ckpt),
        group=group,
    )
    module.to("cpu")  # the evaluator networks get the device's memory
    notes = list(cfg.model.get("notes") or [])
    info = lambda: run_info(  # noqa: E731
        cfg, cfg.model.get("kind", "model"), cfg.run.name, cfg.model.label, started, cfg.model.name, ckpt, notes
    )
    return evaluate_videos(cfg, corpus, clips, videos, run_dir, info, group=group, device=device)


# ----------------------------------------------------------------------------------------------- judge health


def health_for_config(cfg: DictConfig, score_gt: bool = False, log: Callable[[str], object] = print) -> Health | None:
    """`bench health` and `bench table1`: the corpus, test clips, metrics and protocol of `cfg`, the GT row
    scored first when `score_gt` and missing (with every evaluator calibrated), then `ensure_health`."""
    from benchmark import scoring
    from benchmark.health import ensure_health

    corpus = build_corpus(cfg)
    corpus.ensure()
    if score_gt:
        scoring.prepare_evaluators(cfg, corpus)
    clips = scoring.test_clips(cfg, corpus)
    # the evaluators run where the run scores (a GPU node's SyncNet for the shifted clips)
    metrics = scoring.build_metrics(cfg, list(cfg.metrics.names), corpus, run_device(cfg))
    protocol = scoring.protocol_for(cfg, corpus, clips, metrics)
    if score_gt:
        scoring.ensure_gt_row(cfg, clips, metrics, protocol, tag="health")
    return ensure_health(cfg, corpus, [real_counterpart(c) for c in clips], protocol, metrics, log)


def ensure_rows_health(rows: Iterable[tuple[DictConfig, str]], log: Callable[[str], object] = print) -> list[Path]:
    """For `bench table1`: the judge health of each protocol its rows were scored under, from the first row config
    (with the protocol hash its results carry) of each; a failure is logged, never fatal to the table. Returns the
    GT folders that hold one."""
    done: dict[str, Path] = {}
    for cfg, digest in rows:
        if digest in done:
            continue
        try:
            health = health_for_config(cfg, log=log)
        except Exception as err:  # the table is still written: it only lacks its health block
            log(f"[health] judge health not computed: {type(err).__name__}: {err}")
            continue
        if health is not None and health.protocol_hash == digest:
            done[digest] = Path(cfg.run.out_dir) / str(cfg.dataset.name) / f"GT-{digest[:8]}"
    return list(done.values())
