"""What a preparation does (PrepareConfig), what decides redoing a clip, and the errors it raises."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from data.faces import CROPS, SOURCE_CHOICES, crop_name

# 2: landmarks cached apart from the crops (a clip is re-detected only when its landmark settings change), the
# wav2lip crop's box rule shared with `bench generate`
PREPARE_VERSION = 2

# Reject reasons (the manifest's rejects and the summary count them by these names).
REASONS = {
    "corrupt": "the file cannot be decoded",
    "no_audio": "no audio stream",
    "av_mismatch": "audio and video lengths differ by more than the tolerance",
    "no_face": "no face in too many frames",
    "too_short": "shorter than the minimum length",
    "no_landmarks": "the landmarks file has no landmarks for this clip",
    "bad_sidecar": "a truth or landmarks file beside the clip cannot be read",
}


class PrepareError(RuntimeError):
    """Preparation cannot run (bad settings, missing weights) or, with strict=True, some clips were rejected."""


class ClipRejected(Exception):
    def __init__(self, reason: str, message: str):
        if reason not in REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")

    def __reduce__(self):  # crosses process boundaries (see data.io.MediaError)
        return (type(self), (self.reason, self.message))


@dataclass
class PrepareConfig:
    """How a corpus is prepared. Unknown keys are errors (`from_dict`)."""

    landmarks: str = "auto"  # data.faces.SOURCE_CHOICES: auto | truth | file | fan | dlib
    landmarks_dir: str | None = None  # for `file`: <dir>/<clip_id>.npy or .npz (key "landmarks"), [T,68,2]
    device: str = "auto"  # for `fan`: auto = cuda when torch sees a GPU, else cpu
    crops: list[str] = field(default_factory=lambda: ["wav2lip"])  # data.faces.CROPS
    features: list[str] = field(default_factory=lambda: ["mel"])  # FEATURES
    chunk_frames: int = 64  # frames per read from the ffmpeg pipe: bounds the decoded video in memory
    detect_batch: int = 16  # most frames per face-detector call (the face-detector out-of-memory problem)
    audio_chunk_s: float = 60.0  # seconds of audio per feature block
    max_av_mismatch_frames: int = 2  # like data.corpus.MAX_AV_MISMATCH_FRAMES
    max_no_face: float = 0.2  # most frames (fraction) allowed without a face; gaps are interpolated
    min_frames: int = 10  # shorter clips are rejected (a Wav2Lip window needs 5 frames + context)
    shard_clips: int = 64  # clips per shard of the manifest (the unit a DDP rank streams)
    workers: int = 2

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PrepareConfig:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PrepareError(f"unknown prepare settings {unknown}; valid: {sorted(known)}")
        # null in a YAML means "the default" (e.g. `crops: null`: the dataset's crop, set by data.corpus)
        cfg = cls(**{k: v for k, v in d.items() if v is not None})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check the settings; crops become canonical names (`tracked` -> `syncnet`), each once."""
        from data.prepare.features import FEATURES

        if self.landmarks not in SOURCE_CHOICES:
            raise PrepareError(f"unknown landmark source {self.landmarks!r}; valid: {list(SOURCE_CHOICES)}")
        try:
            self.crops = list(dict.fromkeys(crop_name(c) for c in self.crops))
        except ValueError as err:
            raise PrepareError(str(err)) from None
        for f in self.features:
            if f not in FEATURES:
                raise PrepareError(f"unknown audio feature {f!r}; valid: {sorted(FEATURES)}")
        if self.landmarks == "file" and not self.landmarks_dir:
            raise PrepareError("landmarks: file needs landmarks_dir (a folder of <clip_id>.npy / .npz files)")
        if self.chunk_frames < 1 or self.detect_batch < 1:
            raise PrepareError("chunk_frames and detect_batch must be >= 1")

    def clip_settings(self, source: str) -> str:
        """What decides a clip's landmarks and whether it is accepted, for the source it resolved to: a record
        made under other clip settings is redone from scratch (detection included). Crops and features are
        not in it: a missing one is added to a finished clip from its cached landmarks and audio."""
        keep = {
            "source": source,
            "landmarks_dir": str(self.landmarks_dir) if source == "file" else None,
            "max_av_mismatch_frames": self.max_av_mismatch_frames,
            "max_no_face": self.max_no_face,
            "min_frames": self.min_frames,
            "version": PREPARE_VERSION,
        }
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]

    def settings_hash(self) -> str:
        """clip_settings of the configured source (`auto` as such), recorded in prepared.json."""
        return self.clip_settings(self.landmarks)

    def recorded(self) -> dict[str, Any]:
        """The settings written to prepared.json (all but the worker count, which changes no output)."""
        return {k: v for k, v in asdict(self).items() if k != "workers"}


def crop_versions(names: list[str]) -> dict[str, int]:
    return {n: CROPS[n].version for n in names}
