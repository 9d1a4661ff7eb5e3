"""syncnet_python's AV offset / confidence algorithm (SyncNetInstance.evaluate + calc_pdist), and LSE-D / LSE-C.

For one clip (25 fps video, 16 kHz audio):

- frames: ``crop="wholeframe"`` is Wav2Lip's LRS scoring (evaluation/scores_LSE/SyncNetInstance_calc_scores.py):
  every frame, BGR (cv2.imread order), ``cv2.resize(frame, (224, 224))`` on uint8, then float 0-255;
  ``crop="tracked"`` is syncnet_python's run_pipeline.py + run_syncnet.py: face tracks (data.faces.track), each
  track's 224 px crops scored against the audio of the track's frames; the clip's value is its longest track's
  (a talking-face clip holds one face), and a clip without a track is a counted failure;
- audio: ``python_speech_features.mfcc`` with defaults of the int16 sample values (syncnet_python reads the
  wav with scipy, unscaled), transposed to (13, M), 100 columns per second;
- ``min_length = min(T, N // 640)``; windows ``v = 0 .. min_length - 6`` (syncnet_python's
  ``range(0, lastframe)`` with ``lastframe = min_length - 5``: one fewer than the complete 5-frame windows);
  lip input ``frames[v:v+5]``, audio input ``mfcc[:, 4v:4v+20]``, embedded in batches of 20;
- ``calc_pdist``: audio embeddings zero-padded by ``vshift`` rows at both ends; video window i is compared
  with padded rows i .. i + 2 vshift (audio windows i - vshift .. i + vshift) by
  ``F.pairwise_distance`` (Euclidean, eps 1e-6 added to the difference);
- ``mdist[k]`` = mean over windows at candidate k; **offset = vshift - argmin**, **min_dist (LSE-D) = min**,
  **conf (AV confidence = LSE-C) = median - min** (torch.median of the 31 values: the middle one).

Sign: mdist[k] pairs video window i with audio window i + k - vshift. Audio that is advanced by k frames
(the sound of frame v is heard at frame v - k) is measured as offset +k.

`sync_scores` is the vectorised path the metric uses: each frame is preprocessed once, windows are views,
all windows are embedded once and the 2 vshift + 1 shifts are one tensor operation. `sync_scores_reference`
is a line-by-line transcription of the reference loops (also the `bench perf` baseline); both give identical
numbers for the same evaluator and batch size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data.audio import psf_mfcc
from data.clip import SAMPLE_RATE, SAMPLES_PER_FRAME
from metrics.base import ClipScoreError

if TYPE_CHECKING:
    from data.faces.track import Detector, FaceTrack, TrackReport, TrackSettings
    from metrics.backbones.syncnet import SyncEvaluator

CROP_MODES = ("wholeframe", "tracked")
#: network-name prefixes of SyncNets calibrated on a corpus, per crop. A tracked calibration's name must not
#: start with the wholeframe prefix, so that `find_calibrated(fingerprint, "sync_eval_")` (every wholeframe
#: calibration registered so far) never picks a tracked one, and the other way round.
CALIBRATED_PREFIXES = {"wholeframe": "sync_eval_", "tracked": "tracked_sync_eval_"}
#: `metrics.sync.track` keys (configs/metrics/default.yaml); `corpus` may be added at run time (see track_setup)
TRACK_KEYS = (
    "detector",
    "upsample",
    "landmarks",
    "landmark_weights",
    "min_track",
    "num_failed_det",
    "min_face_size",
    "crop_scale",
    "iou_threshold",
    "scene_threshold",
    "min_scene_len",
    "corpus",
)
TRACK_DETECTORS = ("auto", "dlib", "s3fd", "landmarks")
#: the weights-store name of syncnet_python's S3FD (`sfd_face.pth`); `detector: auto` uses S3FD when it is registered
S3FD_WEIGHTS = "sfd_face"
VSHIFT = 15  # syncnet_python --vshift default
BATCH_SIZE = 20  # syncnet_python --batch_size default
WINDOW_FRAMES = 5
MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps
MFCC_WINDOW = 20
WHOLEFRAME_SIZE = 224  # Wav2Lip SyncNetInstance_calc_scores.py: cv2.resize(frame, (224, 224))
PAIRWISE_EPS = 1e-6  # torch.nn.functional.pairwise_distance default


@dataclass(frozen=True)
class SyncResult:
    """syncnet_python's outputs for one clip.

    offset: AV offset in frames (vshift - argmin mdist); conf: median(mdist) - min(mdist) (AV confidence,
    Wav2Lip's LSE-C); min_dist: min(mdist) (Wav2Lip's LSE-D); mdist: float [2 vshift + 1] mean distance per
    candidate, index k <-> offset vshift - k; num_windows: number of 5-frame windows averaged.
    """

    offset: int
    conf: float
    min_dist: float
    mdist: np.ndarray
    num_windows: int
    #: crop="tracked": the face-track report (detector, scenes, tracks kept and dropped, per-track results)
    track: dict[str, Any] | None = None

    @property
    def lse_d(self) -> float:
        return self.min_dist

    @property
    def lse_c(self) -> float:
        return self.conf


def check_crop(crop: str) -> str:
    """Validate a crop mode name (CROP_MODES)."""
    if crop in CROP_MODES:
        return crop
    raise ValueError(f"unknown crop mode {crop!r}; valid crop modes: {', '.join(CROP_MODES)}")


def calibrated_network_prefix(crop: str) -> str:
    """The network-name prefix of SyncNets calibrated on `crop` (see CALIBRATED_PREFIXES)."""
    return CALIBRATED_PREFIXES[check_crop(crop)]


def syncnet_frames(video: np.ndarray, crop: str = "wholeframe") -> np.ndarray:
    """uint8 RGB [T, H, W, 3] -> uint8 BGR [T, 224, 224, 3] as the reference reads them (resize on uint8).

    The frames of one picture sequence: with crop="tracked" pass a track's crops (already 224 px, which
    run_syncnet.py reads as they are); the whole clip goes through `face_tracks_of` first."""
    check_crop(crop)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be uint8 [T, H, W, 3] RGB, got {video.dtype} {tuple(video.shape)}")
    size = (WHOLEFRAME_SIZE, WHOLEFRAME_SIZE)
    out = np.empty((video.shape[0], *size, 3), np.uint8)
    for t, frame in enumerate(video):
        out[t] = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), size)
    return out


def syncnet_mfcc(audio: np.ndarray) -> np.ndarray:
    """float32 audio [N] in [-1, 1] -> float32 [13, M]: python_speech_features.mfcc of the int16-scaled samples."""
    return np.ascontiguousarray(psf_mfcc(np.asarray(audio, np.float64) * 32768.0, SAMPLE_RATE).T, np.float32)


def num_sync_windows(num_frames: int, num_samples: int) -> int:
    """Number of windows syncnet_python evaluates: min(T, N // 640) - 5 (may be <= 0)."""
    return min(int(num_frames), int(num_samples) // SAMPLES_PER_FRAME) - WINDOW_FRAMES


def _checked_windows(video: np.ndarray, audio: np.ndarray) -> int:
    if audio is None or np.asarray(audio).ndim != 1:
        raise ClipScoreError("SyncNet scores need the clip's mono audio")
    n = num_sync_windows(video.shape[0], audio.shape[0])
    if n < 1:
        raise ClipScoreError(
            f"too short for SyncNet: {video.shape[0]} frames and {audio.shape[0] // SAMPLES_PER_FRAME} frames of "
            "audio; syncnet_python needs at least 6 of both"
        )
    return n


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def offset_and_confidence(mdist: torch.Tensor, vshift: int) -> tuple[int, float, float]:
    """(offset, conf, min_dist) from the mean distance per shift, as SyncNetInstance.evaluate does."""
    minval, minidx = torch.min(mdist, 0)
    offset = vshift - int(minidx)
    conf = torch.median(mdist) - minval
    return offset, float(conf), float(minval)


# -- face tracks (crop="tracked") ------------------------------------------------------------------------------


def track_setup(track: Mapping[str, Any] | None) -> tuple[TrackSettings, str, dict[str, Any]]:
    """(tracker settings, detector name, detector options) from a `metrics.sync.track` mapping (None: defaults).

    detector: `auto` (S3FD when `sfd_face` is registered in the weights store, as run_pipeline.py; else dlib,
    offline, which finds the synthetic corpus's drawn faces in most frames), `s3fd`, `dlib` (HOG, `upsample`: an
    int, or `auto`: data.faces.track.dlib_detector(None)), `landmarks` (boxes from the landmark backend
    `landmarks`, default `learned`, with `landmark_weights` or the regressor calibrated on `corpus`). `corpus` is
    not a config key: a caller that knows the corpus being scored may add it for `landmarks: learned`.
    """
    from data.faces.track import TrackSettings

    given = dict(track or {})
    unknown = sorted(set(given) - set(TRACK_KEYS))
    if unknown:
        raise ValueError(f"unknown metrics.sync.track setting(s) {unknown}; valid: {', '.join(TRACK_KEYS)}")
    detector = str(given.pop("detector", "auto"))
    if detector not in TRACK_DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; valid: {', '.join(TRACK_DETECTORS)}")
    options: dict[str, Any] = {
        k: given.pop(k) for k in ("upsample", "landmarks", "landmark_weights", "corpus") if k in given
    }
    if given.get("min_track") is not None:
        given["min_track"] = int(given["min_track"])
    settings = TrackSettings(**given)
    if detector == "auto":
        from metrics import weights as store

        detector = "s3fd" if S3FD_WEIGHTS in store.list_weights() else "dlib"
    return settings, detector, options


S3FD_HOW_TO_GET = (
    "Get sfd_face.pth with joonson/syncnet_python's download_model.sh and register it in the weights store as "
    f"{S3FD_WEIGHTS!r}; or use metrics.sync.track.detector=dlib."
)


@lru_cache(maxsize=2)
def _s3fd_detector(sha256: str) -> Detector:
    # keyed by the file's hash: a re-registered file builds a new network
    from data.faces.s3fd import S3FDDetector
    from metrics import weights as store

    blob, _ = store.load(S3FD_WEIGHTS, S3FD_HOW_TO_GET)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else blob
    return S3FDDetector(state)


@lru_cache(maxsize=4)
def _dlib_detector(upsample: int | None) -> Detector:
    from data.faces.track import dlib_detector

    return dlib_detector(upsample)


def build_track_detector(name: str, options: Mapping[str, Any]) -> tuple[Detector, str]:
    """The detector `name` (track_setup's) and the label results record for it."""
    from data.faces.track import landmark_detector

    if name == "s3fd":
        from metrics import weights as store

        entry = store.resolve(S3FD_WEIGHTS, S3FD_HOW_TO_GET)[1]
        return _s3fd_detector(entry.sha256), f"s3fd({entry.name}, sha256 {entry.sha256[:12]})"
    if name == "dlib":
        given = options.get("upsample", "auto")
        upsample = None if given in (None, "auto") else int(given)
        return _dlib_detector(upsample), f"dlib_hog(upsample={'auto' if upsample is None else upsample})"
    from metrics.backbones.landmarks import build_backend

    backend_name = str(options.get("landmarks") or "learned")
    kwargs: dict[str, Any] = {}
    if options.get("landmark_weights"):
        kwargs["weights"] = str(options["landmark_weights"])
    backend = build_backend(backend_name, corpus=options.get("corpus"), **kwargs)
    label = f"landmarks:{backend.name}" + (f"({backend.info['weights']})" if backend.info.get("weights") else "")
    return landmark_detector(backend.estimate), label


def face_tracks_of(video: np.ndarray, track: Mapping[str, Any] | None) -> tuple[list[FaceTrack], TrackReport]:
    """data.faces.track.face_tracks of one clip under `metrics.sync.track` settings."""
    from data.faces.track import face_tracks

    settings, name, options = track_setup(track)
    detector, label = build_track_detector(name, options)
    return face_tracks(video, detector, settings, detector_name=label)


def track_audio(audio: np.ndarray, first: int, last: int) -> np.ndarray:
    """The samples of frames first..last (run_pipeline.py cuts the wav from first / 25 s to (last + 1) / 25 s)."""
    return np.asarray(audio)[first * SAMPLES_PER_FRAME : (last + 1) * SAMPLES_PER_FRAME]


def longest_track(tracks: list[FaceTrack], report: TrackReport) -> FaceTrack:
    """The track a clip is scored by: the longest (the first of equals); ClipScoreError saying why when none."""
    if not tracks:
        why = "; ".join(d["reason"] for d in report.dropped[:3]) or "no face detected in any frame"
        raise ClipScoreError(
            f"no face track ({report.detector}, faces in {report.frames_with_face}/{report.frames} frames): {why}"
        )
    return max(tracks, key=lambda t: (t.num_frames, -t.first))


def _scored_tracks(score: Any, video: np.ndarray, audio: np.ndarray, track: Mapping[str, Any] | None) -> SyncResult:
    """Every track scored by `score(crops, audio segment)`, as run_syncnet.py does; the longest one's result."""
    if audio is None or np.asarray(audio).ndim != 1:
        raise ClipScoreError("SyncNet scores need the clip's mono audio")
    tracks, report = face_tracks_of(video, track)
    chosen = longest_track(tracks, report)
    per_track = []
    result: SyncResult | None = None
    for t in tracks:
        entry: dict[str, Any] = {"first": t.first, "last": t.last, "detections": t.detections}
        try:
            res = score(t.crops, track_audio(audio, t.first, t.last))
            entry.update(offset=res.offset, conf=res.conf, min_dist=res.min_dist)
            if t is chosen:
                result = res
        except ClipScoreError as err:
            entry["error"] = str(err)
            if t is chosen:
                raise ClipScoreError(f"longest face track (frames {t.first}-{t.last}): {err}") from None
        per_track.append(entry)
    assert result is not None
    info = {**report.to_dict(), "scored": {"first": chosen.first, "last": chosen.last}, "per_track": per_track}
    return SyncResult(result.offset, result.conf, result.min_dist, result.mdist, result.num_windows, info)


# -- reference transcription ---------------------------------------------------------------------------------


def calc_pdist(feat1: torch.Tensor, feat2: torch.Tensor, vshift: int = VSHIFT) -> list[torch.Tensor]:
    """syncnet_python SyncNetInstance.calc_pdist: per video window, distances to 2 vshift + 1 audio windows."""
    win_size = vshift * 2 + 1
    feat2p = F.pad(feat2, (0, 0, vshift, vshift))
    dists = []
    for i in range(len(feat1)):
        dists.append(F.pairwise_distance(feat1[[i], :].repeat(win_size, 1), feat2p[i : i + win_size, :]))
    return dists


@torch.inference_mode()
def sync_scores_reference(
    evaluator: nn.Module,
    video: np.ndarray,
    audio: np.ndarray,
    *,
    crop: str = "wholeframe",
    vshift: int = VSHIFT,
    batch_size: int = BATCH_SIZE,
    track: Mapping[str, Any] | None = None,
) -> SyncResult:
    """The syncnet_python loops as written: a (1, 3, T, 224, 224) float tensor, windows sliced and
    concatenated per batch, one `calc_pdist` call per video window. Baseline for parity and `bench perf`."""
    if check_crop(crop) == "tracked":
        return _scored_tracks(
            lambda v, a: sync_scores_reference(evaluator, v, a, vshift=vshift, batch_size=batch_size),
            video,
            audio,
            track,
        )
    n_win = _checked_windows(video, audio)
    evaluator.eval()
    device = _device_of(evaluator)
    # a Module and a SyncEvaluator: an intersection that annotations cannot express
    net = cast("SyncEvaluator", evaluator)
    frames = syncnet_frames(video, crop)
    im = np.transpose(frames[None], (0, 4, 1, 2, 3))  # (1, 3, T, H, W)
    imtv = torch.from_numpy(im.astype(float)).float()
    cct = torch.from_numpy(syncnet_mfcc(audio)[None, None].astype(float)).float()
    lastframe = n_win
    im_feat, cc_feat = [], []
    for i in range(0, lastframe, batch_size):
        batch = range(i, min(lastframe, i + batch_size))
        im_in = torch.cat([imtv[:, :, v : v + WINDOW_FRAMES, :, :] for v in batch], 0)
        im_feat.append(net.forward_lip(im_in.to(device)).cpu())
        cc_in = torch.cat([cct[:, :, :, v * MFCC_PER_FRAME : v * MFCC_PER_FRAME + MFCC_WINDOW] for v in batch], 0)
        cc_feat.append(net.forward_aud(cc_in.to(device)).cpu())
    im_feat_t, cc_feat_t = torch.cat(im_feat, 0), torch.cat(cc_feat, 0)
    dists = calc_pdist(im_feat_t, cc_feat_t, vshift=vshift)
    mdist = torch.mean(torch.stack(dists, 1), 1)
    offset, conf, minval = offset_and_confidence(mdist, vshift)
    return SyncResult(offset, conf, minval, mdist.numpy().astype(np.float64), n_win)


# -- vectorised path ------------------------------------------------------------------------------------------


def shift_distances(video_feats: torch.Tensor, audio_feats: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """All of calc_pdist at once: [2 vshift + 1, W] distances, row k pairing video i with padded audio i + k.

    Same `F.pairwise_distance` per row as the reference, laid out as `torch.stack(dists, 1)`, so the values
    (and their mean over windows) are bit-identical to the loop.
    """
    n = video_feats.shape[0]
    win_size = 2 * vshift + 1
    padded = F.pad(audio_feats, (0, 0, vshift, vshift))
    idx = torch.arange(n, device=audio_feats.device)[:, None] + torch.arange(win_size, device=audio_feats.device)
    left = video_feats[:, None, :].expand(n, win_size, video_feats.shape[1]).reshape(n * win_size, -1)
    dists = F.pairwise_distance(left, padded[idx.reshape(-1)]).view(n, win_size)
    return dists.t().contiguous()


def prepare_clip_frames(evaluator: nn.Module, frames_bgr: np.ndarray, chunk: int = 4 * BATCH_SIZE) -> torch.Tensor:
    """`evaluator.prepare_lip_frames` of every frame (uint8/float BGR [T, H, W, 3]), in chunks, on its device.

    Frames are handed over as a float (T, 3, H, W) view of the channels-last data (no layout copy); the
    evaluators' per-frame preprocessing does not depend on the layout, so this equals the reference path.
    """
    device = _device_of(evaluator)
    net = cast("SyncEvaluator", evaluator)  # a Module and a SyncEvaluator (see sync_scores_reference)
    out = []
    for t in range(0, frames_bgr.shape[0], chunk):
        part = torch.from_numpy(np.ascontiguousarray(frames_bgr[t : t + chunk])).to(device).float()
        out.append(net.prepare_lip_frames(part.permute(0, 3, 1, 2)))
    return torch.cat(out, 0)


def embed_clip(
    evaluator: nn.Module,
    frames_bgr: np.ndarray,
    mfcc: np.ndarray,
    num_windows: int,
    batch_size: int = BATCH_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(video, audio) embeddings [W, D] of the first `num_windows` windows of a clip, on the CPU.

    frames_bgr: uint8 or float BGR [T, H, W, 3] (the evaluator's input frames); mfcc: [13, M] raw.
    Frames go through `evaluator.prepare_lip_frames` once (in chunks), windows are strided views of the
    prepared frames, and batches have the reference's composition (`batch_size` consecutive windows), so the
    embeddings equal the reference's.
    """
    device = _device_of(evaluator)
    frames = prepare_clip_frames(evaluator, frames_bgr[: num_windows + WINDOW_FRAMES - 1], 4 * batch_size)
    # windows[v] = frames[v:v+5] as a view: (W, *frame_shape, 5) -> (W, 5, *frame_shape)
    windows = frames.unfold(0, WINDOW_FRAMES, 1).movedim(-1, 1)
    cc = torch.from_numpy(mfcc).to(device)
    cc_windows = cc.unfold(1, MFCC_WINDOW, MFCC_PER_FRAME).movedim(1, 0)[:, None]  # (M', 1, 13, 20)
    net = cast("SyncEvaluator", evaluator)  # a Module and a SyncEvaluator (see sync_scores_reference)
    im_feat, cc_feat = [], []
    for i in range(0, num_windows, batch_size):
        j = min(num_windows, i + batch_size)
        # distances in float32 whatever precision the forwards ran in (bf16 autocast on a GPU)
        im_feat.append(net.forward_lip_prepared(windows[i:j].contiguous()).float().cpu())
        cc_feat.append(net.forward_aud(cc_windows[i:j].contiguous()).float().cpu())
    return torch.cat(im_feat, 0), torch.cat(cc_feat, 0)


def scores_from_embeddings(video_feats: torch.Tensor, audio_feats: torch.Tensor, vshift: int = VSHIFT) -> SyncResult:
    """SyncResult from per-window embeddings [W, D] (video window i and audio window i in sync)."""
    mdist = shift_distances(video_feats, audio_feats, vshift).mean(1)
    offset, conf, minval = offset_and_confidence(mdist, vshift)
    return SyncResult(offset, conf, minval, mdist.numpy().astype(np.float64), int(video_feats.shape[0]))


@torch.inference_mode()
def sync_scores(
    evaluator: nn.Module,
    video: np.ndarray,
    audio: np.ndarray,
    *,
    crop: str = "wholeframe",
    vshift: int = VSHIFT,
    batch_size: int = BATCH_SIZE,
    track: Mapping[str, Any] | None = None,
) -> SyncResult:
    """AV offset, confidence (LSE-C) and min distance (LSE-D) of one clip.

    evaluator: a SyncNet with the `metrics.backbones.syncnet` interface (put in eval mode here);
    video: uint8 RGB [T, H, W, 3] at 25 fps; audio: float32 [N] at 16 kHz in [-1, 1]; crop: CROP_MODES;
    track: the tracked crop's settings (`metrics.sync.track`, see `track_setup`; None: defaults), unused by
    wholeframe. Raises ClipScoreError when the clip (tracked: its longest face track) has fewer than 6 frames
    of video or audio (no window), or, tracked, when no face track is found; the result's `track` then
    holds the tracking report.
    """
    if check_crop(crop) == "tracked":
        return _scored_tracks(
            lambda v, a: sync_scores(evaluator, v, a, vshift=vshift, batch_size=batch_size), video, audio, track
        )
    n_win = _checked_windows(video, audio)
    evaluator.eval()
    frames = syncnet_frames(video[: n_win + WINDOW_FRAMES - 1], crop)
    video_feats, audio_feats = embed_clip(evaluator, frames, syncnet_mfcc(audio), n_win, batch_size)
    return scores_from_embeddings(video_feats, audio_feats, vshift)
