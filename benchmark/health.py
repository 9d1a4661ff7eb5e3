"""Judge health: how well each evaluator the protocol uses does its job on the protocol's own GT clips.

A table ranks models by what its judges say; a judge that cannot tell in-sync from shifted audio, misreads the
real speakers' words or loses the real faces makes its columns noise. So before models are read, every judge the
protocol's metric list uses is checked on the GT clips under the exact preprocessing of the GT row (the same
metric objects, the same EvalSample as `benchmark.scoring._score_one` builds), and a judge outside a threshold
of `metrics.health` (configs/metrics/default.yaml) puts a warning on its columns (docs/judge_health.md):

- SyncNet (av_offset, av_conf, lse_*) and the landmark lip-sync judge (lsync_lm_*): in-sync accuracy, the share
  of GT clips whose offset in the GT row is within +-`sync_tolerance` frames; shifted-audio detection, the GT
  clips with their audio moved by each of `shifts` frames (`data.synthetic.perturb.shift_audio`, pure numpy)
  scored by the same metric object: detected when the offset moves by the shift within +-`shift_tolerance`
  frames of the clip's own GT offset; the GT distribution of the confidence (median, IQR).
- the lipreader (wer): its word accuracy on the GT words, 1 - the GT row's WER.
- each landmark backend (blinks, LMD, landmark lip-sync...): detection rate over the GT frames and, where the
  clips carry truth landmarks (the synthetic corpus), its mean error over the inter-ocular distance.
- FID / FVD: the floor, the distance between two halves of the GT set from the GT row's cached features.

Everything here counts a clip the judge could not score against it: a judge that fails on real clips is not
doing its job. The result goes to `<GT folder>/health.json` with the protocol hash and the health settings, and
is computed again only when either changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from benchmark.results import Protocol, read_jsonl, write_json_atomic
from benchmark.tables.health import HEALTH_FILE, Check, Health, read_health
from data.clip import Clip
from metrics.base import ClipFeatures, ClipMetric, ClipScoreError, EvalSample, SetMetric, SetScoreError

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus
    from metrics.backbones.landmarks import LandmarkBackend

Row = dict[str, Any]
Metrics = dict[str, ClipMetric | SetMetric]  # as benchmark.scoring builds them (not imported: scoring calls here)
#: the outer eye corners of the iBUG-68 scheme: their distance is the usual landmark-error normaliser (300-W)
OUTER_EYE_CORNERS = (36, 45)


def health_settings(cfg: DictConfig) -> dict[str, Any]:
    """The `metrics.health` section: tolerances, shifts and thresholds."""
    section = OmegaConf.to_container(cfg.metrics.health, resolve=True)
    assert isinstance(section, dict)  # a config section
    return {str(k): v for k, v in section.items()}


# ----------------------------------------------------------------------------------------------- the rules


def in_sync(offset: float | None, tolerance: float) -> bool:
    """A GT clip is in sync when its judge measured an offset within +-tolerance frames (None: not scored)."""
    return offset is not None and np.isfinite(offset) and abs(offset) <= tolerance


def shift_detected(gt_offset: float | None, shifted_offset: float | None, shift: int, tolerance: float) -> bool:
    """A shift of the audio by `shift` frames is detected when the measured offset moved by `shift` from the
    clip's own GT offset, within +-tolerance frames; a clip not scored either way is not detected."""
    if gt_offset is None or shifted_offset is None or not np.isfinite([gt_offset, shifted_offset]).all():
        return False
    return abs(shifted_offset - gt_offset - shift) <= tolerance


def in_sync_check(
    judge: str, offsets: Sequence[float | None], tolerance: float, threshold: float, columns: list[str]
) -> Check:
    n, k = len(offsets), sum(in_sync(o, tolerance) for o in offsets)
    failed = sum(o is None for o in offsets)
    return Check(
        judge,
        f"in-sync accuracy on GT (|offset| <= {tolerance:g})",
        k / n if n else None,
        f"{k}/{n} clips" + (f", {failed} not scored" if failed else ""),
        threshold,
        ">=",
        columns,
        percent=True,
    )


def shift_check(
    judge: str,
    trials: Sequence[tuple[float | None, float | None, int]],
    tolerance: float,
    threshold: float,
    columns: list[str],
) -> Check:
    """trials: (GT offset, offset with shifted audio, shift) per clip and shift."""
    n = len(trials)
    k = sum(shift_detected(g, s, shift, tolerance) for g, s, shift in trials)
    shifts = ", ".join(f"{s:+d}" for s in sorted({t[2] for t in trials}))
    return Check(
        judge,
        f"shifted-audio detection ({shifts} frames, +-{tolerance:g})",
        k / n if n else None,
        f"{k}/{n} shifted clips",
        threshold,
        ">=",
        columns,
        percent=True,
    )


def distribution_check(judge: str, what: str, values: Sequence[float], columns: list[str]) -> Check:
    """Median and interquartile range of a per-clip GT value (informative: no threshold)."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return Check(judge, f"{what} on GT (median)", None, "no clip scored", columns=columns)
    q25, med, q75 = np.percentile(x, [25, 50, 75])
    detail = f"IQR {q75 - q25:.3g} ({q25:.3g} to {q75:.3g}), {x.size} clips"
    return Check(judge, f"{what} on GT (median)", float(med), detail, columns=columns)


# ----------------------------------------------------------------------------------------------- GT records


def gt_records(gt_folder: Path) -> dict[str, Row]:
    """clip id -> the GT row's record of it (samples.jsonl)."""
    return {r["clip_id"]: r for r in read_jsonl(gt_folder / "samples.jsonl", missing_ok=True) if "clip_id" in r}


def _raw(rec: Row | None, target: str, index: int) -> float | None:
    """Output `index` of `target` in a clip's record; None when the clip failed or is missing."""
    if rec is None or target in rec.get("failed", {}):
        return None
    raw = rec.get("raw", {}).get(target)
    return float(raw[index]) if raw is not None and raw[index] is not None else None


def _columns(target: str, names: Sequence[str]) -> list[str]:
    """The protocol's metric names computed by the class `target` (one SyncNet pass gives four)."""
    from benchmark import registry

    return [n for n in names if registry.metrics().entry(n).target == target]


# ----------------------------------------------------------------------------------------------- judges


def _score_shifted(
    metric: ClipMetric, base: EvalSample, clip: Clip, shifts: Sequence[int], out: int
) -> list[float | None]:
    """Output `out` of `metric` on the clip with its audio moved by each shift (None where it failed)."""
    from data.synthetic.perturb import shift_audio

    samples = [
        EvalSample(
            index=base.index,
            clip_id=base.clip_id,
            fake=base.fake,
            audio=shift_audio(clip, s).audio,
            real=base.real,
            real_landmarks=base.real_landmarks,
            extra={"landmarks": base.extra.setdefault("landmarks", {})},  # the video is unchanged: its landmarks too
        )
        for s in shifts
    ]
    found: list[float | None] = []
    for result in metric.score_clips(samples):
        value = None if isinstance(result, ClipScoreError) else float(list(result)[out])
        found.append(value if value is not None and np.isfinite(value) else None)
    return found


class _SyncJudge:
    """In-sync accuracy, shifted detection and the confidence distribution of one offset-measuring metric."""

    def __init__(self, judge: str, target: str, metric: ClipMetric, offset: str, conf: str, conf_label: str) -> None:
        self.judge, self.target, self.metric = judge, target, metric
        self.offset, self.conf = metric.outputs.index(offset), metric.outputs.index(conf)
        self.conf_label = conf_label
        self.gt: list[float | None] = []
        self.confs: list[float] = []
        self.trials: list[tuple[float | None, float | None, int]] = []

    def add(self, rec: Row | None, base: EvalSample, clip: Clip, shifts: Sequence[int]) -> None:
        gt = _raw(rec, self.target, self.offset)
        self.gt.append(gt)
        conf = _raw(rec, self.target, self.conf)
        if conf is not None:
            self.confs.append(conf)
        shifted = _score_shifted(self.metric, base, clip, shifts, self.offset)
        self.trials += [(gt, s, k) for s, k in zip(shifted, shifts)]

    def checks(self, st: Mapping[str, Any], columns: list[str]) -> list[Check]:
        return [
            in_sync_check(self.judge, self.gt, st["sync_tolerance"], st["min_in_sync"], columns),
            shift_check(self.judge, self.trials, st["shift_tolerance"], st["min_shift_detection"], columns),
            distribution_check(self.judge, self.conf_label, self.confs, columns),
        ]


def _frame_detector(backend: LandmarkBackend) -> Any:
    """The dlib backend that finds a face per frame behind `backend`, or None: dlib reuses the previous frame's
    box where it finds none, so its landmarks exist on every frame and only the detector says which it found."""
    from metrics.backbones.landmarks import DlibLandmarks, FanLandmarks

    if isinstance(backend, DlibLandmarks):
        return backend
    if isinstance(backend, FanLandmarks):
        return backend.dlib
    return None


class _LandmarkJudge:
    """Detection rate over GT frames and, against truth landmarks, the mean error over the inter-ocular distance."""

    def __init__(self, backend: LandmarkBackend, truth: bool) -> None:
        self.backend, self.truth = backend, truth
        self.frames = self.detected = self.failed_clips = 0
        self.errors: list[np.ndarray] = []

    def add(self, base: EvalSample, clip: Clip) -> None:
        from data.faces.dlib import reference_grey
        from metrics.backbones.landmarks import sample_landmarks

        self.frames += len(base.fake)
        try:
            lm = sample_landmarks(base, self.backend, "fake")
        except ClipScoreError:
            self.failed_clips += 1
            return
        dlib = _frame_detector(self.backend)
        if dlib is not None:
            found = np.array([len(dlib.core.detect(reference_grey(f))) > 0 for f in base.fake])
        else:
            found = np.isfinite(lm).all(axis=(1, 2))
        self.detected += int(found.sum())
        if self.truth and clip.landmarks is not None:
            t = min(len(lm), len(clip.landmarks))
            truth = np.asarray(clip.landmarks[:t], np.float64)
            a, b = OUTER_EYE_CORNERS
            iod = np.linalg.norm(truth[:, a] - truth[:, b], axis=-1)
            keep = (iod > 0) & found[:t]
            err = np.linalg.norm(np.asarray(lm[:t], np.float64) - truth, axis=-1).mean(axis=1)
            self.errors.append(err[keep] / iod[keep])

    def checks(self, st: Mapping[str, Any], columns: list[str]) -> list[Check]:
        judge = f"landmarks ({self.backend.name})"
        failed = f", {self.failed_clips} clips it failed on" if self.failed_clips else ""
        out = [
            Check(
                judge,
                "detection rate over GT frames",
                self.detected / self.frames if self.frames else None,
                f"{self.detected}/{self.frames} frames{failed}",
                st["min_landmark_detection"],
                ">=",
                columns,
                percent=True,
            )
        ]
        if self.truth and self.errors:
            err = np.concatenate(self.errors)
            out.append(
                Check(
                    judge,
                    "mean error vs truth / inter-ocular distance",
                    float(err.mean()) if err.size else None,
                    f"{err.size} frames",
                    st["max_landmark_error"],
                    "<=",
                    columns,
                )
            )
        return out


def lipreader_check(
    records: Iterable[Row | None], target: str, level: str, threshold: float, columns: list[str]
) -> Check:
    """Word accuracy of the lipreader on the GT words: 1 - WER from the GT row's per-clip (wer, ref_words); at
    word level a clip it could not read (word outside its vocabulary, no mouth) counts as one misread word."""
    words = correct = 0.0
    failed = 0
    for rec in records:
        wer, ref = _raw(rec, target, 0), _raw(rec, target, 1)
        if wer is None or ref is None:
            failed += 1
            words += 1.0 if level == "word" else 0.0
            continue
        words += ref
        correct += ref * (1.0 - wer)
    detail = f"{correct:.0f}/{words:.0f} words" + (f", {failed} clips not read" if failed else "")
    what = "word accuracy on GT words" if level == "word" else "1 - WER on GT sentences"
    return Check("lipreader", what, correct / words if words else None, detail, threshold, ">=", columns, True)


def halves(records: Sequence[Row]) -> tuple[list[Row], list[Row], str]:
    """Two halves of the GT clips: by speaker when there are several (each speaker, most clips first, to the
    smaller half, so no speaker is on both sides), else alternating clips in clip-id order."""
    speakers: dict[str, list[Row]] = {}
    for rec in records:
        speakers.setdefault(str(rec.get("speaker") or ""), []).append(rec)
    if len(speakers) > 1:
        a: list[Row] = []
        b: list[Row] = []
        names: tuple[list[str], list[str]] = ([], [])
        for spk, recs in sorted(speakers.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            side = 0 if len(a) <= len(b) else 1
            (a if side == 0 else b).extend(recs)
            names[side].append(spk)
        return a, b, f"by speaker: {', '.join(names[0])} | {', '.join(names[1])}"
    ordered = sorted(records, key=lambda r: r["clip_id"])
    return ordered[0::2], ordered[1::2], "alternating clips in clip-id order (one speaker)"


def floor_check(metric: SetMetric, target: str, records: Sequence[Row], gt_folder: Path, columns: list[str]) -> Check:
    """The metric's own Fréchet distance between two halves of the GT set, from the GT row's cached features. The
    metric's states are set aside and put back afterwards: `reset` would not do (FID keeps its real statistics
    across it), and the caller's next row must find the metric as it was."""
    from benchmark.features import load_features
    from benchmark.tables.cells import display_name

    usable = [r for r in records if target not in r.get("failed", {}) and target in r.get("features", {})]
    a, b, how = halves(usable)
    judge = f"{display_name(metric.outputs[0])} floor"
    what = "GT half vs GT half"
    saved = {name: getattr(metric, name) for name in metric._defaults}
    counters = (metric._update_count, metric._computed, metric.sync_on_compute)
    try:
        for name, default in metric._defaults.items():
            setattr(metric, name, default.detach().clone() if isinstance(default, torch.Tensor) else [])
        metric.sync_on_compute = False  # one process: never wait on a torchmetrics all-gather
        for side, real in ((a, False), (b, True)):
            for rec in side:
                feats = load_features(gt_folder / rec["features"][target]["file"])
                metric.update([ClipFeatures(int(rec.get("index", 0)), rec["clip_id"], feats, real=real)])
        value = float(metric.compute()[metric.outputs[0]])
        return Check(judge, what, value, f"{len(a)} vs {len(b)} clips, {how}", columns=columns)
    except (SetScoreError, OSError, ValueError) as err:
        return Check(judge, what, None, f"not computed: {err}", columns=columns)
    finally:
        for name, value in saved.items():
            setattr(metric, name, value)
        metric._update_count, metric._computed, metric.sync_on_compute = counters


# ----------------------------------------------------------------------------------------------- all judges


def judge_health(
    cfg: DictConfig,
    corpus: LayoutCorpus,
    clips: Sequence[Clip],
    metrics: Metrics,
    protocol: Protocol,
    gt_folder: Path,
) -> Health:
    """Every check of the judges `metrics` (the protocol's, built once) on the GT `clips`, from the GT row in
    `gt_folder`; every metric's state is left as it was."""
    from data.corpus import PreparedCorpus
    from metrics.landmarks import LandmarkClipMetric
    from metrics.lipsync_lm import LandmarkLipSync
    from metrics.sync import SyncNetScores
    from metrics.wer import LipreaderWER

    st = health_settings(cfg)
    names = list(cfg.metrics.names)
    records = gt_records(gt_folder)
    shifts = [int(s) for s in st["shifts"]]
    sync_judges: list[_SyncJudge] = []
    for target, m in metrics.items():
        if isinstance(m, SyncNetScores):
            sync_judges.append(_SyncJudge("SyncNet", target, m, "av_offset", "av_conf", "AV confidence"))
        elif isinstance(m, LandmarkLipSync):
            sync_judges.append(
                _SyncJudge("landmark lip-sync", target, m, "lsync_lm_offset", "lsync_lm_corr", "correlation at lag 0")
            )
    # one judge per landmark estimator, whichever metrics share it; truth only where the clips carry it
    truth = not isinstance(corpus, PreparedCorpus)  # a prepared corpus's landmarks are a detector's, not truth
    backends: dict[str, tuple[_LandmarkJudge, list[str]]] = {}
    for target, m in metrics.items():
        if isinstance(m, LandmarkClipMetric):
            key = m.landmark_backend.key
            judge, cols = backends.setdefault(key, (_LandmarkJudge(m.landmark_backend, truth), []))
            cols += _columns(target, names)

    for i, clip in enumerate(clips):
        base = EvalSample(
            index=i,
            clip_id=clip.clip_id,
            fake=np.asarray(clip.video),
            audio=clip.audio,
            real=np.asarray(clip.video),
            real_landmarks=clip.landmarks,
        )
        for judge, _ in backends.values():
            judge.add(base, clip)
        for sync in sync_judges:
            sync.add(records.get(clip.clip_id), base, clip, shifts)

    checks: list[Check] = []
    for sync in sync_judges:
        checks += sync.checks(st, _columns(sync.target, names))
    for target, m in metrics.items():
        if isinstance(m, LipreaderWER):
            recs = [records.get(c.clip_id) for c in clips]
            checks.append(lipreader_check(recs, target, m.level, st["min_lipreader_accuracy"], _columns(target, names)))
    for judge, cols in backends.values():
        checks += judge.checks(st, cols)
    gt_recs = [records[c.clip_id] for c in clips if c.clip_id in records]
    for target, m in metrics.items():
        if isinstance(m, SetMetric):
            checks.append(floor_check(m, target, gt_recs, gt_folder, _columns(target, names)))
    notes = []
    if not checks:
        notes.append(
            "none of this protocol's metrics has a judge checked here (no SyncNet, lipreader, landmarks, FID/FVD)"
        )
    return Health(
        protocol=protocol.name,
        protocol_hash=protocol.hash,
        dataset=protocol.dataset,
        n_clips=len(clips),
        settings=st,
        computed=dt.datetime.now().isoformat(timespec="seconds"),
        checks=checks,
        notes=notes,
    )


def ensure_health(
    cfg: DictConfig,
    corpus: LayoutCorpus,
    clips: Sequence[Clip],
    protocol: Protocol,
    metrics: Metrics,
    log: Callable[[str], object] = print,
) -> Health | None:
    """The judge health of `protocol` in its GT folder: read back when it was computed for this protocol hash and
    these health settings, else computed with `metrics` (the protocol's, as built for scoring) and written
    atomically. None when the GT row is not scored yet."""
    from benchmark.features import gt_dir

    folder = gt_dir(cfg, protocol)
    if not (folder / "results.json").exists():
        log(f"[health] no GT row of protocol {protocol.hash[:8]} in {folder} yet: judge health not computed")
        return None
    settings = health_settings(cfg)
    old = read_health(folder)
    if old is not None and old.protocol_hash == protocol.hash and old.settings == settings:
        return old
    log(f"[health] checking the judges of protocol {protocol.hash[:8]} on {len(clips)} GT clips")
    health = judge_health(cfg, corpus, clips, metrics, protocol, folder)
    write_json_atomic(folder / HEALTH_FILE, health.to_dict())
    for warning in health.warnings():
        log(f"[health] WARNING {warning}")
    return health
