"""SyncNet scores as a clip metric: AV offset, AV confidence (syncnet_python) and LSE-D, LSE-C (Wav2Lip).

One pass of the syncnet_python algorithm (`metrics.functional.sync`) per generated clip with its audio gives
all four numbers. ``av_conf`` and ``lse_c`` are the same per-clip value (Wav2Lip's LSE-C is syncnet_python's
confidence averaged over videos); both names are reported because the two literatures use both. ``lse_d`` is
syncnet_python's "min dist". Their scale depends on the evaluator: raw 1024-d embeddings for syncnet_v2 (S),
unit vectors (distances in [0, 2]) for the calibrated small evaluator, so results are comparable only for the
same evaluator weights (recorded in ``evaluator_info``).

Which network scores (`metrics.sync.evaluator`): a registered weights name; `auto` = the official syncnet_v2, on
any corpus (an error when it is not imported: a stand-in calibrated for minutes on the corpus itself must be
chosen knowingly); `calibrated` = the SyncNet calibrated on the corpus being scored. A corpus whose faces
syncnet_v2 never saw chooses `calibrated` in its dataset config (configs/datasets/synthetic.yaml `metrics:`), so
that choice is recorded with the settings. A calibrated evaluator that does not exist yet is trained first by
`bench calibrate --what sync` (the runner does it: `calibration_needed`).

Two modes (`metrics.sync.mode`). Windows, MFCC, distances, offset and confidence are the same code
(`metrics.functional.sync.sync_scores`) in both; they differ only in the frames and samples handed to it:

- ``paper``: what syncnet_python / Wav2Lip's scoring script compute for the video FILE
  (`metrics.functional.sync_files`). Frames: ``ffmpeg -f image2`` JPEGs (default mjpeg settings, 4:2:0, lossy)
  read back with cv2.imread, at the file's own frame timing. Audio (under ``audio: file``): the file's track as
  ``ffmpeg -async 1 -ac 1 -acodec pcm_s16le -ar 16000`` writes it, read as int16. A sample without a file (the
  GT row scores the corpus clips in memory) is first written to a temporary mp4 with `data.io.write_video`
  (H.264 + AAC, the encoding the suite gives generated clips), so GT and generated clips take the same lossy
  path. The ffmpeg build is recorded in ``evaluator_info``: its mjpeg encoder decides the pixels.
- ``standard``: frames are ``EvalSample.fake`` (the lossless rgb24 decode at 25 fps, or the GT clip itself);
  audio (under ``audio: file``) is the file's track as `data.io.read_audio` decodes it (float32, 16 kHz).

Which audio (`metrics.sync.audio`): ``file`` (default) = the audio track of ``EvalSample.fake_file``, which is
what a viewer hears and what the official scripts score (a generated file whose track is shifted, trimmed or
re-encoded is judged with it); a sample without a file uses ``EvalSample.audio``, the GT clip's own track (in
paper mode as the temporary mp4 carries it); a file without an audio track is a counted failure. ``reference`` =
``EvalSample.audio`` (the corpus clip's audio, what the model was asked to follow) whatever the file carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from metrics import weights as store
from metrics.base import ClipMetric, ClipScoreError, EvalSample
from metrics.functional.sync import BATCH_SIZE, VSHIFT, calibrated_network_prefix, check_crop, sync_scores
from metrics.functional.sync_files import extract_official, extract_official_from_arrays, ffmpeg_build, file_audio

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus

OFFICIAL = "syncnet_v2"
#: the benchmark.calibrate.CALIBRATORS entry that trains one
CALIBRATION = "sync"
MODES = ("paper", "standard")
AUDIO_SOURCES = ("file", "reference")
HOW_TO_GET = (
    "Get syncnet_v2.model with joonson/syncnet_python's download_model.sh, then "
    "`bench weights import syncnet_v2.model --as syncnet_v2`."
)


def resolve_sync_evaluator(choice: str, corpus: LayoutCorpus | None, crop: str = "wholeframe") -> str | None:
    """The registered weights name `metrics.sync.evaluator: choice` stands for on `corpus` (see the module doc);
    None when it is a calibration of this corpus that does not exist yet. A calibration is made for one crop (its
    inputs are that crop's frames): `crop` picks it."""
    if choice not in ("auto", "calibrated"):
        return choice
    if choice == "auto":
        if OFFICIAL in store.list_weights():
            return OFFICIAL
        where = f"corpus {corpus.name!r}" if corpus is not None else "this corpus"
        raise store.WeightsError(
            f"scoring lip-sync on {where} needs the official SyncNet, which is not imported. {HOW_TO_GET} "
            "Or opt into a SyncNet calibrated on the corpus itself with metrics.sync.evaluator=calibrated: its "
            "numbers are marked as calibrated in every table and cannot be compared with published syncnet_v2 ones."
        )
    if corpus is None:
        return None
    entry = store.find_calibrated(corpus.fingerprint(), calibrated_network_prefix(crop))
    return entry.name if entry is not None else None


def load_sync_network(name: str) -> tuple[nn.Module, dict[str, Any]]:
    """The evaluator network registered as `name` (syncnet_v2 or a calibrated one) and what identifies it."""
    from metrics.backbones.syncnet import build_sync_evaluator, load_sync_evaluator_state, sync_evaluator_from_config

    path, entry = store.resolve(name, HOW_TO_GET if name == OFFICIAL else "")
    if entry.calibrated:
        blob, _ = store.load(name)
        net = sync_evaluator_from_config(blob["config"])
        load_sync_evaluator_state(net, blob["state_dict"], source=str(path))
    else:
        from metrics.backbones.inception import read_evaluator_state_dict

        net = build_sync_evaluator(OFFICIAL)
        load_sync_evaluator_state(net, read_evaluator_state_dict(path), source=str(path))
    info = {
        "name": entry.name,
        "sha256": entry.sha256,
        "content_sha256": entry.identity,
        "network": entry.network,
        "calibrated": entry.calibrated,
        "status": entry.status,
        "source": entry.source,
    }
    return net.eval(), info


class SyncNetScores(ClipMetric):
    """Per-clip (av_offset, av_conf, lse_d, lse_c) of a generated clip against its audio.

    evaluator: a registered weights name, `auto` or `calibrated` (module doc), resolved on `corpus`; or a SyncNet
    module with the `metrics.backbones.syncnet` interface (tests, custom evaluators), then described by
    weights_name / weights_sha256. It is kept in eval mode without gradients. crop: "wholeframe" (Wav2Lip's LRS
    protocol: every frame resized to 224x224); vshift, batch_size: the syncnet_python defaults 15 and 20; device:
    where the evaluator runs (None: where it already is). mode: "paper" | "standard", audio: "file" |
    "reference" (module doc). track: face-track settings for a tracked crop, handed to `sync_scores`. Clips with
    fewer than 6 frames of video or audio, or without audio, are counted as failures.
    """

    outputs = ("av_offset", "av_conf", "lse_d", "lse_c")
    higher_is_better = None  # outputs differ (LSE-D lower, LSE-C higher, AV offset to GT): METRICS has each
    config_section = "sync"  # configs/metrics/default.yaml section holding its settings
    needs_corpus = True  # `auto` / `calibrated` depend on the corpus being scored
    evaluator_key = "syncnet"

    def __init__(
        self,
        evaluator: nn.Module | str = "auto",
        *,
        corpus: LayoutCorpus | None = None,
        crop: str = "wholeframe",
        vshift: int = VSHIFT,
        batch_size: int = BATCH_SIZE,
        device: str | None = None,
        weights_name: str | None = None,
        weights_sha256: str | None = None,
        mode: str = "standard",
        audio: str = "file",
        track: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.crop = check_crop(crop)
        if vshift < 1 or batch_size < 1:
            raise ValueError(f"vshift and batch_size must be >= 1, got {vshift} and {batch_size}")
        if mode not in MODES:
            raise ValueError(f"unknown SyncNet mode {mode!r}; valid: {', '.join(MODES)}")
        if audio not in AUDIO_SOURCES:
            raise ValueError(f"unknown SyncNet audio source {audio!r}; valid: {', '.join(AUDIO_SOURCES)}")
        self.vshift, self.batch_size = int(vshift), int(batch_size)
        self.mode, self.audio_source = mode, audio
        self.track = dict(track) if track is not None else None
        # the landmark detector of a tracked crop finds the regressor calibrated on the corpus being scored
        needs_corpus = self.track is not None and self.track.get("detector") == "landmarks"
        self._track_run = {**self.track, "corpus": corpus} if needs_corpus and self.track is not None else self.track
        if isinstance(evaluator, str):
            name = resolve_sync_evaluator(evaluator, corpus, self.crop)
            if name is None:
                raise store.WeightsError(
                    f"no evaluation SyncNet calibrated on corpus {getattr(corpus, 'name', '?')!r}: run "
                    f"`bench calibrate --what {CALIBRATION}` (the runner does it before scoring)"
                )
            evaluator, weights = load_sync_network(name)
        else:
            status = getattr(evaluator, "evaluator_status", "unverified")
            weights = {"name": weights_name, "sha256": weights_sha256, "status": status}
        if device is not None:
            evaluator = evaluator.to(device)
        evaluator.eval().requires_grad_(False)
        self.evaluator = evaluator
        config = getattr(evaluator, "evaluator_config", None) or {"arch": type(evaluator).__name__, "kwargs": {}}
        self.evaluator_info = {
            **weights,
            "arch": config["arch"],
            "kwargs": dict(config.get("kwargs", {})),
            "weights": weights["name"],
            "crop": self.crop,
            "vshift": self.vshift,
            "mode": self.mode,
            "audio": self.audio_source,
        }
        if self.track is not None and self.crop == "tracked":
            # only a tracked crop reads them: whole-frame results keep the same settings hash whatever they say
            self.evaluator_info["track"] = dict(self.track)
        if self.mode == "paper":
            # the JPEG bytes (and so the scores) depend on ffmpeg's mjpeg encoder and resampler
            self.evaluator_info["ffmpeg"] = ffmpeg_build()

    @classmethod
    def calibration_needed(cls, settings: dict[str, Any], corpus: LayoutCorpus) -> str | None:
        """`sync` when the configured evaluator is a calibration of `corpus` that does not exist yet (raises,
        before anything runs, when a real corpus would silently fall back to a calibrated stand-in)."""
        choice = settings.get("evaluator", "auto")
        crop = settings.get("crop", "wholeframe")
        if isinstance(choice, str) and resolve_sync_evaluator(choice, corpus, crop) is None:
            return CALIBRATION
        return None

    @classmethod
    def protocol_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The `sync` section without its `track` block unless the crop is tracked: a whole-frame protocol's hash
        (and its GT row) must not change with tracker settings it never reads."""
        if settings.get("crop", "wholeframe") == "tracked":
            return settings
        return {k: v for k, v in settings.items() if k != "track"}

    def train(self, mode: bool = True) -> SyncNetScores:
        # Lightning toggles train/eval on every module it owns; the evaluator's BatchNorm must stay frozen
        super().train(mode)
        self.evaluator.eval()
        return self

    def clip_inputs(self, sample: EvalSample) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 RGB frames, float32 16 kHz audio) this clip is scored on under the mode and audio settings."""
        # `file` reads the file's track; a sample without a file (a GT clip) has only its own track, sample.audio
        from_file = self.audio_source == "file" and sample.fake_file is not None
        if not from_file and sample.audio is None:
            raise ClipScoreError("SyncNet scores need the clip's audio")
        if self.mode == "standard":
            if sample.fake_file is not None and from_file:
                return sample.fake, file_audio(sample.fake_file)
            assert sample.audio is not None
            return sample.fake, sample.audio
        if sample.fake_file is not None:
            official = extract_official(sample.fake_file, audio=from_file)
        else:
            # the GT row's in-memory clips are encoded like generated ones, so both take the same lossy path; under
            # `file` the clip's own track is scored as the official script would hear it (AAC, then its wav)
            own_track = self.audio_source == "file"
            official = extract_official_from_arrays(
                sample.fake, sample.audio if own_track else None, with_audio=own_track
            )
            from_file = own_track
        if from_file:
            return official.frames_rgb(), official.audio_float()
        assert sample.audio is not None
        return official.frames_rgb(), sample.audio

    def score_clip(self, sample: EvalSample) -> tuple[float, float, float, float]:
        frames, audio = self.clip_inputs(sample)
        res = sync_scores(
            self.evaluator,
            frames,
            audio,
            crop=self.crop,
            vshift=self.vshift,
            batch_size=self.batch_size,
            track=self._track_run,
        )
        return float(res.offset), res.conf, res.min_dist, res.conf
