"""Calibrate the small evaluation SyncNet on a corpus (the synthetic one by default), on CPU, in about a minute.

The network is `metrics.backbones.syncnet.SyncNetSmall`; `bench calibrate --what sync` (benchmark.calibrate) runs
this and registers the result as `sync_eval_small-<corpus>-<sha8>`.

Recipe of docs/sync_calibration.md (the one that worked; the pairwise contrastive loss on raw
embeddings collapsed): block InfoNCE over in-clip shifts on L2-normalised embeddings.

- a batch is 8 clips x 24 consecutive windows; all 192 video and audio windows are embedded at once;
- per clip, the 24 x 24 squared distances d2 (video i, audio j) give logits -d2 / tau, tau 0.1; the
  positive is j = i (shift 0), the negatives are |j - i| in 3..15; |j - i| of 1-2 (nearly in sync, the
  mouth moves slowly) and above 15 (beyond the evaluator's vshift) are masked out;
- cross-entropy in both directions (video -> audio rows, audio -> video columns), Adam lr 1e-3;
- random +-2 px translation of each 5-frame window;
- one addition to the prototype's recipe (``pad_candidate``): the zero vector that calc_pdist pads the audio with
  is one more negative of every anchor, at its exact distance 1. On the default (medium) synthetic corpus the
  prototype's recipe alone left in-sync distances near 1.05, above the padding's 1.0, so on 1.1 s test clips
  (23 windows, 15 of them padded at a +-15 shift) the offset went to +-15 for about 1 clip in 13; with the pad
  negative in-sync distances fall to about 0.65 and every held-out clip measured right (3 seeds).

Every clip is preprocessed once, through the same `prepare_lip_frames` the evaluation path uses on 224x224
BGR frames, so training inputs are exactly what `sync_scores` feeds the network. The crop is part of that
path: with ``crop="tracked"`` each clip is first reduced to its longest face track (data.faces.track, the
`metrics.sync.track` settings), i.e. the track's 224 px crops and the audio of its frames, exactly as
`sync_scores(crop="tracked")` scores it; clips without a track are left out and counted. An evaluator is
registered for the crop it was trained on (benchmark.calibrate, `calibrated_network_prefix`).

Training stops when the time budget is spent, or when a periodic held-out check (every `check_every` steps,
after `min_steps`) measures >= 95 % of in-sync clips at |offset| <= 1 and >= 95 % of clips with audio advanced
by 3 frames at 3 +- 1. The final report checks every validation clip in sync, advanced and delayed by 3
frames, and frozen (first frame repeated): an in-sync test alone passes a broken model (docs/sync_calibration.md).
Given the seed and thread count, the sequence of steps is deterministic; only where the time budget cuts it
depends on the machine (pass `max_steps` for a fully reproducible run).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from data.clip import SAMPLES_PER_FRAME, Clip
from metrics.backbones.syncnet import SyncNetSmall, build_sync_evaluator
from metrics.base import ClipScoreError
from metrics.functional.sync import (
    MFCC_PER_FRAME,
    MFCC_WINDOW,
    VSHIFT,
    WINDOW_FRAMES,
    check_crop,
    face_tracks_of,
    longest_track,
    num_sync_windows,
    prepare_clip_frames,
    scores_from_embeddings,
    syncnet_frames,
    syncnet_mfcc,
    track_audio,
)

CLIPS_PER_BATCH = 8
WINDOWS_PER_CLIP = 24
TAU = 0.1
MASKED_SHIFTS = (1, 2)  # near-positives: neither positive nor negative
MAX_SHIFT = VSHIFT  # negatives beyond the evaluator's search range teach nothing it uses
JITTER = 2  # +-2 px translation
TEST_SHIFT = 3  # frames of audio advance/delay in the held-out checks
TARGET_RATE = 0.95


@dataclass
class CalibrationReport:
    """What calibration did and how the result measured on the held-out (validation) clips.

    Rates are fractions of validation clips: in_sync_rate = |offset| <= 1 with the true audio; plus3_rate =
    offset in 3 +- 1 with audio advanced by 3 frames; minus3_rate = offset in -3 +- 1 with audio delayed by 3.
    conf_*: mean AV confidence (median - min of the mean distance, on the unit-sphere scale 0-2) of in-sync
    and of frozen clips (first frame repeated, true audio); a working evaluator has conf_frozen << conf_in_sync.
    """

    arch: str
    evaluator_config: dict[str, Any]
    seed: int
    steps: int
    stop_reason: str  # "target" | "time" | "max_steps"
    n_train: int
    n_val: int
    in_sync_rate: float
    plus3_rate: float
    minus3_rate: float
    conf_in_sync: float
    conf_frozen: float
    lse_d_in_sync: float
    preprocess_seconds: float
    train_seconds: float
    eval_seconds: float
    num_threads: int
    checks: list[dict[str, float]] = field(default_factory=list)
    crop: str = "wholeframe"
    track: dict[str, Any] = field(default_factory=dict)  # crop="tracked": its settings as given
    no_track: list[str] = field(default_factory=list)  # crop="tracked": clips left out (no face track)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def passed(self) -> bool:
        return self.in_sync_rate >= TARGET_RATE and self.plus3_rate >= TARGET_RATE


@dataclass
class _Prepared:
    frames: torch.Tensor  # float [T, S/2 + 2 J, S + 2 J] lower half, edge-padded by J for translation
    mfcc: torch.Tensor  # float [13, M] raw
    num_windows: int  # complete 5-frame windows of video and audio


@dataclass
class _ValClip:
    frames: torch.Tensor  # float [T, S, S] prepared frames, the evaluation input
    mfcc: dict[int, torch.Tensor]  # audio shift (frames) -> raw MFCC [13, M]
    num_windows: int  # syncnet_python's window count


def shift_audio_frames(audio: np.ndarray, k: int) -> np.ndarray:
    """Audio advanced by k frames (k > 0: drop the first 640 k samples, zero-pad the end) or delayed (k < 0).

    Same length; syncnet_python measures advanced audio as offset +k (docs/sync_calibration.md).
    """
    n = int(k) * SAMPLES_PER_FRAME
    out = np.zeros_like(audio)
    if abs(n) >= audio.shape[0]:
        return out
    if n >= 0:
        out[: audio.shape[0] - n] = audio[n:]
    else:
        out[-n:] = audio[: audio.shape[0] + n]
    return out


def tracked_clip(clip: Clip, track: Mapping[str, Any] | None = None) -> Clip | None:
    """`clip` as `sync_scores(crop="tracked")` scores it: its longest face track's 224 px crops (RGB) and the
    audio of the track's frames; None when no track is found."""
    try:
        tracks, report = face_tracks_of(clip.video, track)
        chosen = longest_track(tracks, report)
    except ClipScoreError:
        return None
    audio = track_audio(clip.audio, chosen.first, chosen.last)
    return Clip(clip.clip_id, chosen.crops, audio, speaker_id=clip.speaker_id, split=clip.split)


def _cropped(clips: Sequence[Clip], crop: str, track: Mapping[str, Any] | None, skipped: list[str]) -> Iterator[Clip]:
    # one tracked clip at a time: 224 px crops of a whole corpus would not fit in memory together
    for clip in clips:
        if crop == "wholeframe":
            yield clip
            continue
        out = tracked_clip(clip, track)
        if out is None:
            skipped.append(clip.clip_id)
        else:
            yield out


def _lip_frames(model: SyncNetSmall, video: np.ndarray) -> torch.Tensor:
    # the wholeframe evaluation path up to the network's own per-frame preprocessing, by the same functions
    with torch.no_grad():
        return prepare_clip_frames(model, syncnet_frames(video))


def _prepare_train(model: SyncNetSmall, clip: Clip) -> _Prepared | None:
    length = min(clip.num_frames, clip.audio.shape[0] // SAMPLES_PER_FRAME)
    mfcc = torch.from_numpy(syncnet_mfcc(clip.audio))
    # complete windows of both streams (the MFCC of exactly 640 L samples stops 1 column short of the last one)
    num_windows = min(length - WINDOW_FRAMES + 1, (mfcc.shape[1] - MFCC_WINDOW) // MFCC_PER_FRAME + 1)
    if num_windows < 1:
        return None
    frames = _lip_frames(model, clip.video[:length])
    # pad by J (replicate) so every translation of the lower-half crop stays inside the picture; keep the rows
    # a translated crop can reach: original rows S/2 - J .. S - 1 + J = padded rows S/2 .. S - 1 + 2 J
    size = model.frame_size
    full = F.pad(frames[:, None], (JITTER, JITTER, JITTER, JITTER), mode="replicate")[:, 0, size // 2 :]
    return _Prepared(full.contiguous(), mfcc, num_windows)


def _prepare_val(model: SyncNetSmall, clip: Clip) -> _ValClip | None:
    length = min(clip.num_frames, clip.audio.shape[0] // SAMPLES_PER_FRAME)
    num_windows = num_sync_windows(clip.num_frames, clip.audio.shape[0])
    if num_windows < 1:
        return None
    frames = _lip_frames(model, clip.video[:length])
    mfcc = {k: torch.from_numpy(syncnet_mfcc(shift_audio_frames(clip.audio, k))) for k in (0, TEST_SHIFT, -TEST_SHIFT)}
    return _ValClip(frames, mfcc, num_windows)


@torch.inference_mode()
def _clip_scores(model: SyncNetSmall, clip: _ValClip, shift: int, frozen: bool = False) -> tuple[int, float, float]:
    frames = clip.frames[:1].expand(clip.frames.shape[0], -1, -1) if frozen else clip.frames
    windows = frames.unfold(0, WINDOW_FRAMES, 1).movedim(-1, 1)[: clip.num_windows].contiguous()
    cc = clip.mfcc[shift].unfold(1, MFCC_WINDOW, MFCC_PER_FRAME).movedim(1, 0)[: clip.num_windows, None]
    res = scores_from_embeddings(model.forward_lip_prepared(windows), model.forward_aud(cc.contiguous()))
    return res.offset, res.conf, res.min_dist


def _check(model: SyncNetSmall, clips: Sequence[_ValClip], full: bool) -> dict[str, float]:
    was_training = model.training
    model.eval()
    sync = [_clip_scores(model, c, 0) for c in clips]
    plus = [_clip_scores(model, c, TEST_SHIFT)[0] for c in clips]
    out = {
        "in_sync_rate": float(np.mean([abs(off) <= 1 for off, _, _ in sync])),
        "plus3_rate": float(np.mean([abs(off - TEST_SHIFT) <= 1 for off in plus])),
        "conf_in_sync": float(np.mean([conf for _, conf, _ in sync])),
        "lse_d_in_sync": float(np.mean([dist for _, _, dist in sync])),
    }
    if full:
        minus = [_clip_scores(model, c, -TEST_SHIFT)[0] for c in clips]
        out["minus3_rate"] = float(np.mean([abs(off + TEST_SHIFT) <= 1 for off in minus]))
        out["conf_frozen"] = float(np.mean([_clip_scores(model, c, 0, frozen=True)[1] for c in clips]))
    model.train(was_training)
    return out


def _block_infonce(
    video: torch.Tensor, audio: torch.Tensor, sizes: Sequence[int], pad_candidate: bool = True
) -> torch.Tensor:
    losses = []
    start = 0
    for n in sizes:
        v, a = video[start : start + n], audio[start : start + n]
        start += n
        d2 = 2.0 - 2.0 * v @ a.t()  # squared distance of unit vectors (smooth, unlike cdist at 0)
        shift = (torch.arange(n)[None, :] - torch.arange(n)[:, None]).abs()
        masked = (shift >= MASKED_SHIFTS[0]) & (shift <= MASKED_SHIFTS[-1]) | (shift > MAX_SHIFT)
        logits = (-d2 / TAU).masked_fill(masked, float("-inf"))
        rows, cols = logits, logits.t()
        if pad_candidate:
            # calc_pdist compares windows near the clip's ends with zero-padded audio: distance exactly 1 for
            # unit embeddings. Make that zero vector a negative of every anchor, so the in-sync distance is
            # pushed below it; otherwise short clips drift to offsets of +-vshift (docs/sync_calibration.md)
            pad = torch.full((n, 1), -1.0 / TAU, dtype=logits.dtype, device=logits.device)
            rows, cols = torch.cat([rows, pad], 1), torch.cat([cols, pad], 1)
        target = torch.arange(n)
        losses.append(0.5 * (F.cross_entropy(rows, target) + F.cross_entropy(cols, target)))
    return torch.stack(losses).mean()


def _batch(
    clips: Sequence[_Prepared], order: list[int], rng: np.random.Generator, crop_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    crops, auds, sizes = [], [], []
    h, w = crop_hw
    for ci in order:
        clip = clips[ci]
        n = min(WINDOWS_PER_CLIP, clip.num_windows)
        first = int(rng.integers(0, clip.num_windows - n + 1))
        offsets = rng.integers(0, 2 * JITTER + 1, size=(n, 2))
        for j in range(n):
            v = first + j
            dy, dx = int(offsets[j, 0]), int(offsets[j, 1])
            crops.append(clip.frames[v : v + WINDOW_FRAMES, dy : dy + h, dx : dx + w])
            auds.append(clip.mfcc[:, v * MFCC_PER_FRAME : v * MFCC_PER_FRAME + MFCC_WINDOW])
        sizes.append(n)
    return torch.stack(crops), torch.stack(auds)[:, None], sizes


def calibrate_sync_evaluator(
    train_clips: Sequence[Clip],
    val_clips: Sequence[Clip],
    *,
    seconds: float = 90,
    seed: int = 0,
    arch: str = "small",
    arch_kwargs: dict[str, Any] | None = None,
    max_steps: int | None = None,
    min_steps: int = 100,
    check_every: int = 20,
    check_clips: int = 24,
    num_threads: int | None = 1,
    pad_candidate: bool = True,
    progress: bool = False,
    crop: str = "wholeframe",
    track: Mapping[str, Any] | None = None,
) -> tuple[SyncNetSmall, CalibrationReport]:
    """Train a small evaluation SyncNet on `train_clips`; check it on `val_clips` (other speakers, ideally).

    seconds: wall-clock cap on the training loop (preprocessing and the final validation report come outside
    it, so a slow decode on a busy machine does not eat the steps). max_steps: an optional step cap
    (deterministic runs). min_steps: no early stop on reaching the target rates before this. check_clips: how
    many validation clips the periodic check uses (the final report uses all). num_threads: torch threads
    during calibration, capped at the machine's CPU count, restored afterwards (None: leave torch's setting).
    The default 1 makes the steps independent of the core count, and on a busy 2-core machine it was 5-15x
    faster than 2 threads (OpenMP threads competing with other processes); the small model gains little from
    a second thread anyway. pad_candidate: add calc_pdist's zero-padded audio window (distance 1) as a negative
    of every anchor (see `_block_infonce`). crop / track: the evaluation crop the network is trained for
    (`metrics.sync.crop`, `metrics.sync.track`; module doc). Returns the model in eval mode (on the CPU) and
    the report; raises ValueError when no clip is long enough.
    """
    check_crop(crop)
    if arch != "small":
        raise ValueError(f"calibration trains the 'small' evaluator only (syncnet_v2 needs a GPU), got {arch!r}")
    t_start = time.perf_counter()
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(max(1, min(int(num_threads), os.cpu_count() or 1)))
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = build_sync_evaluator(arch, **(arch_kwargs or {}))
        assert isinstance(model, SyncNetSmall)

        no_track: list[str] = []
        prepared_train = (_prepare_train(model, c) for c in _cropped(train_clips, crop, track, no_track))
        train = [p for p in prepared_train if p is not None]
        val = [p for p in (_prepare_val(model, c) for c in _cropped(val_clips, crop, track, no_track)) if p is not None]
        if not train:
            raise ValueError(f"none of the {len(train_clips)} training clips has a complete 5-frame window")
        if not val:
            raise ValueError(f"none of the {len(val_clips)} validation clips is long enough (>= 6 frames)")
        all_mfcc = torch.cat([p.mfcc for p in train], 1)
        model.set_mfcc_stats(all_mfcc.mean(1), all_mfcc.std(1))
        check_set = [val[i] for i in np.linspace(0, len(val) - 1, min(check_clips, len(val))).round().astype(int)]
        crop_hw = (model.frame_size // 2, model.frame_size)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        steps, stop_reason = 0, "time"
        checks: list[dict[str, float]] = []
        queue: list[int] = []
        bar = _Progress(max_steps, enabled=progress)
        t_train = time.perf_counter()
        preprocess_seconds = t_train - t_start
        while True:
            if max_steps is not None and steps >= max_steps:
                stop_reason = "max_steps"
                break
            if time.perf_counter() - t_train >= seconds:
                break
            if len(queue) < CLIPS_PER_BATCH:
                queue.extend(rng.permutation(len(train)).tolist())
            order, queue = queue[:CLIPS_PER_BATCH], queue[CLIPS_PER_BATCH:]
            crops, auds, sizes = _batch(train, order, rng, crop_hw)
            loss = _block_infonce(model.embed_lip_crops(crops), model.forward_aud(auds), sizes, pad_candidate)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
            optimiser.step()
            steps += 1
            if steps % check_every == 0:
                check = _check(model, check_set, full=False)
                check.update(step=steps, seconds=time.perf_counter() - t_train, loss=loss.item())
                checks.append(check)
                bar.update(steps, check)
                if steps >= min_steps and check["in_sync_rate"] >= TARGET_RATE and check["plus3_rate"] >= TARGET_RATE:
                    stop_reason = "target"
                    break
        train_seconds = time.perf_counter() - t_train
        bar.close(steps, stop_reason)

        t_eval = time.perf_counter()
        model.eval()
        final = _check(model, val, full=True)
        report = CalibrationReport(
            arch=arch,
            evaluator_config=model.evaluator_config,
            seed=seed,
            steps=steps,
            stop_reason=stop_reason,
            n_train=len(train),
            n_val=len(val),
            in_sync_rate=final["in_sync_rate"],
            plus3_rate=final["plus3_rate"],
            minus3_rate=final["minus3_rate"],
            conf_in_sync=final["conf_in_sync"],
            conf_frozen=final["conf_frozen"],
            lse_d_in_sync=final["lse_d_in_sync"],
            preprocess_seconds=preprocess_seconds,
            train_seconds=train_seconds,
            eval_seconds=time.perf_counter() - t_eval,
            num_threads=torch.get_num_threads(),
            checks=checks,
            crop=crop,
            track={k: v for k, v in (track or {}).items() if k != "corpus"},
            no_track=no_track,
        )
        return model.eval(), report
    finally:
        torch.set_num_threads(old_threads)


class _Progress:
    """A rich progress bar over the step budget (nothing in tests); it ends full, saying why training stopped."""

    REASONS = {
        "target": "in-sync and +3 rates reached their targets",
        "max_steps": "step budget spent",
        "time": "wall-clock safety net reached (a busy machine)",
    }

    def __init__(self, max_steps: int | None, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (*Progress.get_default_columns()[:2], MofNCompleteColumn(), TextColumn("steps"))
            self._bar = Progress(*columns, TimeRemainingColumn(), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("calibrating SyncNet", total=max_steps)

    def update(self, steps: int, check: dict[str, float]) -> None:
        if self._bar is not None:
            desc = f"calibrating SyncNet: in-sync {check['in_sync_rate']:.0%}, +3 {check['plus3_rate']:.0%}"
            self._bar.update(self._task, completed=steps, description=desc)

    def close(self, steps: int, reason: str) -> None:
        if self._bar is not None:
            why = self.REASONS.get(reason, reason)
            self._bar.update(self._task, total=steps, completed=steps, description=f"calibrated SyncNet ({why})")
            self._bar.stop()
