"""`bench stress`: score a protocol's GT clips under controlled perturbations and write its metric stress card.

For every perturbation of configs/stress.yaml (data/perturbations.py: ffmpeg re-encodes, frame-rate round trips,
audio shifts, a frozen face...), every GT test clip is perturbed and scored by the protocol's metrics exactly as a
method's video would be: the perturbed video as the generated clip, the clean clip as the reference, the perturbed
audio (an audio perturbation) as the clip's audio. The clean values are the protocol's GT row (scored first when
missing, as `bench evaluate` does); FID/FVD compare the perturbed set with the clean GT set, so their clean value
is 0 by construction. The card (`benchmark.stress_card`) puts each change in units of the metric's between-model
spread on the leaderboard of the same protocol.

Records: `<out_dir>/<dataset>/stress-<hash8>/<perturbation>/samples.jsonl` (+ features/ for FID/FVD), each clip's
record keyed by the protocol hash, the perturbation's name and its settings, so an interrupted pass resumes per
clip and a changed perturbation is scored again. No `results.json` is written there: stress passes are not rows of
the leaderboard.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from benchmark import scoring
from benchmark.features import reference_features
from benchmark.results import (
    Protocol,
    append_jsonl,
    load_results,
    read_jsonl,
    write_json_atomic,
)
from benchmark.stress_card import PassSummary, build_card, is_offset, leaderboard_rows, write_card
from data.clip import Clip
from data.pairs import real_counterpart
from data.perturbations import perturbation
from metrics.base import SetMetric

#: the perturbation list and settings (docs/stress.md)
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "stress.yaml"


@dataclass
class StressOutcome:
    protocol: Protocol
    folder: Path  # the stress records
    card: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def load_stress_config(path: str | Path | None = None) -> dict[str, Any]:
    cfg = OmegaConf.load(Path(path) if path is not None else DEFAULT_CONFIG)
    data = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(data, dict) or not isinstance(data.get("perturbations"), dict):
        raise ValueError(f"{path or DEFAULT_CONFIG}: expected a `perturbations:` mapping of name -> settings")
    return {str(k): v for k, v in data.items()}


def chosen_perturbations(config: Mapping[str, Any], names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """name -> settings (the config's seed filled in) of the perturbations asked for (default: all), checked."""
    table = config["perturbations"]
    unknown = [n for n in names or () if n not in table]
    if unknown:
        raise ValueError(f"unknown perturbations {unknown}; configs/stress.yaml has {', '.join(table)}")
    out = {}
    for name in names or list(table):
        settings = {"seed": int(config.get("seed", 0)), **table[name]}
        perturbation(settings)  # an unknown kind fails before anything is scored
        out[name] = settings
    return out


def stress_dir(cfg: DictConfig, protocol: Protocol) -> Path:
    return Path(cfg.run.out_dir) / str(cfg.dataset.name) / f"stress-{protocol.hash[:8]}"


def stress(
    cfg: DictConfig,
    *,
    names: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    reports_dir: Path = Path("reports"),
    out: Path | None = None,
    device: str | None = None,
    log: Callable[[str], object] = print,
) -> StressOutcome:
    """Score the GT clips of `cfg`'s protocol under every chosen perturbation and write the card."""
    from benchmark import runner
    from benchmark.distributed import run_lock

    config = dict(config) if config is not None else load_stress_config()
    chosen = chosen_perturbations(config, names)
    corpus = runner.build_corpus(cfg)
    corpus.ensure()
    # the real clips behind the test list (a pair protocol's videos with their own audio): stress is about judges
    clips = [real_counterpart(c) for c in scoring.test_clips(cfg, corpus)]
    scoring.prepare_evaluators(cfg, corpus)
    metric_names = list(cfg.metrics.names)
    metrics = scoring.build_metrics(cfg, metric_names, corpus, device)
    protocol = scoring.protocol_for(cfg, corpus, clips, metrics)
    folder = stress_dir(cfg, protocol)
    with run_lock(folder):
        clean, clean_rows = clean_gt(cfg, clips, metrics, protocol)
        set_outputs = {o for m in metrics.values() if isinstance(m, SetMetric) for o in m.outputs}
        for name in set_outputs & set(metric_names):
            clean[name] = 0.0  # the clean GT set against itself: 0 by construction, not computed
        reference = reference_features(cfg, clips, protocol)
        passes = []
        for i, (name, settings) in enumerate(chosen.items(), 1):
            log(f"[stress] {i}/{len(chosen)} {name}")
            passes.append(score_pass(cfg, clips, metrics, protocol, folder / name, name, settings, reference))
            for metric in metrics.values():
                metric.reset()
    offsets = [m for m in metric_names if is_offset(m)]
    clean_per_clip = {
        m: {r["clip_id"]: r["values"][m] for r in clean_rows if m in r.get("values", {})} for m in offsets
    }
    board = leaderboard_rows(
        Path(cfg.run.out_dir) / str(cfg.dataset.name), protocol.dataset, protocol.hash, metric_names
    )
    card = build_card(
        dataset=protocol.dataset,
        protocol={"name": protocol.name, "hash": protocol.hash, "n_clips": protocol.n_clips},
        metrics=metric_names,
        clean=clean,
        clean_per_clip=clean_per_clip,
        passes=passes,
        board=board,
        tolerance=float(config.get("detection", {}).get("tolerance_frames", 1)),
        notes=[f"records: {folder}"],
    )
    files = write_card(card, reports_dir, out)
    return StressOutcome(protocol, folder, card, files)


def clean_gt(
    cfg: DictConfig,
    clips: Sequence[Clip],
    metrics: scoring.Metrics,
    protocol: Protocol,
) -> tuple[dict[str, float | None], list[scoring.Row]]:
    """The protocol's GT row (its values and per-clip records): the recorded one, else scored now the way
    `scoring.evaluate_videos` scores it (same folder, same per-clip key, so a later evaluation reuses it)."""
    gt = scoring.ensure_gt_row(cfg, clips, metrics, protocol, tag="stress")
    res = load_results(gt / "results.json")
    recorded = {name: m.value for name, m in res.metrics.items()}
    return {n: recorded.get(n) for n in cfg.metrics.names}, read_jsonl(gt / "samples.jsonl", missing_ok=True)


def score_pass(
    cfg: DictConfig,
    clips: Sequence[Clip],
    metrics: scoring.Metrics,
    protocol: Protocol,
    folder: Path,
    name: str,
    settings: Mapping[str, Any],
    reference: Callable[[SetMetric], None],
) -> PassSummary:
    """Every clip perturbed and scored (resuming from `folder/samples.jsonl`); returns the pass's values."""
    kind = perturbation(settings)
    key = {"protocol": protocol.hash, "perturbation": name, "settings": dict(settings)}
    # per-pass copies: an audio perturbation sets the copy's audio when its clip is scored, so a clip resumed from
    # its record is never perturbed, and the corpus's clips stay clean for the next pass
    views = [dataclasses.replace(c) for c in clips]

    def fetch(i: int, clip: Clip) -> np.ndarray:
        made = kind.make(clips[i], settings)
        clip.audio = made.clip.audio
        if made.notes:
            append_jsonl(folder / "notes.jsonl", {"clip_id": clip.clip_id, "key": key, "notes": made.notes})
        return made.clip.video

    notes: list[str] = []
    names = list(cfg.metrics.names)
    values, rows = scoring.score_clips(
        views,
        fetch,
        metrics,
        names,
        folder / "samples.jsonl",
        progress=bool(cfg.run.progress),
        reference=reference,
        notes=notes,
        key=lambda i, c: key,
    )
    notes += _clip_notes(folder / "notes.jsonl", key, {c.clip_id for c in clips})
    summary = PassSummary(
        name=name,
        kind=str(settings["kind"]),
        settings=dict(settings),
        description=kind.describe(settings),
        stream=kind.stream,
        expected_shift=kind.shift(settings),
        values={m: r.value for m, r in values.items()},
        counts={m: (r.n, r.n_failed) for m, r in values.items()},
        per_clip={m: _per_clip(rows, m) for m in names if is_offset(m)},
        notes=notes,
    )
    write_json_atomic(folder / "stress.json", dataclasses.asdict(summary))
    return summary


def _per_clip(rows: Sequence[scoring.Row], metric: str) -> dict[str, float]:
    return {r["clip_id"]: r["values"][metric] for r in rows if metric in r.get("values", {})}


def _clip_notes(path: Path, key: Mapping[str, Any], clip_ids: set[str], shown: int = 4) -> list[str]:
    """The perturbation's per-clip notes of this key: the most frequent ones with their clip counts."""
    counts: dict[str, set[str]] = {}
    for row in read_jsonl(path, missing_ok=True):
        if row.get("key") == key and row.get("clip_id") in clip_ids:
            for note in row["notes"]:
                counts.setdefault(note, set()).add(row["clip_id"])
    ranked = sorted(counts.items(), key=lambda item: -len(item[1]))
    out = [f"{note} ({len(ids)} of {len(clip_ids)} clips)" for note, ids in ranked[:shown]]
    if len(ranked) > shown:
        out.append(f"{len(ranked) - shown} other per-clip notes in {path}")
    return out
