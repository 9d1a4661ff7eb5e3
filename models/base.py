"""The written contract between a talking-face model and the benchmark: `TalkingFaceModule`.

Every class in the model registry (models/__init__.py MODELS) subclasses it. What the runner, perf, `bench
generate`, `bench ls models` and the contract test (tests/models/test_contract.py) read from a model is declared
here, and checked when a subclass is defined, so a model that forgets a piece fails on import with a message
naming it, not in the middle of a run:
- `kind`: "model" (a method with its own results), "component" (a network other models train against, trained or
  loaded for them; it makes no video), or "baseline" (a reference row such as the static frame);
- `config_class`: the hyperparameter dataclass (with `preset(name, **params)` where the model has presets);
- `crop`: the data.faces crop the model trains on and generates from (None: frames as the corpus stores them);
- `trainable` and `train_dataset(clips, seed=, fixed=)`: its training windows (a trainable model must define it);
- `generate(identity, audio, pose_prior=, seed=)`: the inputs are checked here, then the model's `_generate`
  (which every model and baseline defines) makes the frames, and the output is checked against the contract;
- the face-redraw hook of `bench generate` (benchmark/generate.py), for models that reanimate the face crops of
  any video: `redraws_faces = True`, `default_pads`, `face_audio_windows` and `redraw_faces`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import lightning as L
import numpy as np
from torch.utils.data import Dataset

from data.clip import Clip, frames_for_audio
from models.common.inputs import clip_seeds, generation_inputs

KINDS = ("model", "component", "baseline")


def _defines(cls: type, name: str) -> bool:
    """Whether `name` is defined by `cls` or a base below TalkingFaceModule (not by the contract itself)."""
    return any(name in vars(c) for c in cls.__mro__ if issubclass(c, TalkingFaceModule) and c is not TalkingFaceModule)


class TalkingFaceModule(L.LightningModule):
    """A talking-face model, component or baseline as the benchmark sees it (module docstring)."""

    kind: ClassVar[str] = "model"
    config_class: ClassVar[type]
    crop: ClassVar[str | None] = None
    trainable: ClassVar[bool] = True
    redraws_faces: ClassVar[bool] = False
    # inference.py --pads (top, bottom, left, right) added to a detected face box by `bench generate`
    default_pads: ClassVar[tuple[int, int, int, int]] = (0, 0, 0, 0)
    # evaluator family (a metric registry `evaluator` key, e.g. "syncnet") -> the network of that family the model
    # is trained against: tables mark the cells such a relative scored, since they flatter the model
    trained_against: ClassVar[dict[str, str]] = {}
    # the instance of `config_class` the module was built with
    cfg: Any

    # What a subclass defines (declared, not implemented, here; __init_subclass__ checks they exist):
    # frames uint8 [B, T, H, W, 3] of checked inputs; `seed` is one int per clip (models.common.inputs.clip_seeds)
    _generate: Callable[..., np.ndarray]
    # the face-redraw hook (redraws_faces): per-output-frame audio windows of one clip's float32 [N] audio for T
    # frames, and uint8 RGB face crops [n, S, S, 3] + their n windows -> redrawn crops uint8 [n, S, S, 3]
    face_audio_windows: Callable[[np.ndarray, int], np.ndarray]
    redraw_faces: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__name__
        if cls.kind not in KINDS:
            raise TypeError(f"{name}.kind is {cls.kind!r}; expected one of {', '.join(KINDS)}")
        missing = []
        if not _defines(cls, "config_class"):
            missing.append("config_class (its hyperparameter dataclass)")
        if cls.kind != "component" and not _defines(cls, "_generate"):
            missing.append("_generate (the frames of generate())")
        if cls.trainable and not _defines(cls, "train_dataset"):
            missing.append("train_dataset (its training windows), or trainable = False")
        for hook in ("face_audio_windows", "redraw_faces") if cls.redraws_faces else ():
            if not _defines(cls, hook):
                missing.append(f"{hook} (the face-redraw hook of redraws_faces = True)")
        if missing:
            raise TypeError(f"{name} (a TalkingFaceModule of kind {cls.kind!r}) must define: {'; '.join(missing)}")

    # ----- training ----------------------------------------------------------------------------------------
    def train_dataset(self, clips: Sequence[Clip], *, seed: int, fixed: bool) -> Dataset:
        """The dataset of training windows `training_step` takes batches of, cut from `clips`.

        `seed` seeds its random windows; `fixed=True` is the deterministic variant (item i a function of (seed, i)
        alone, data.windows.SeededItems), `fixed=False` draws from a stream per process. The data module
        (data/datamodule.py) builds the training and validation sets through it. A model that trains overrides
        this; a class with `trainable = False` (the baselines) has nothing to train, which this error says.
        """
        raise TypeError(f"{type(self).__name__} has no training windows: it has nothing to train (trainable = False)")

    # ----- generation --------------------------------------------------------------------------------------
    def generate(
        self,
        identity: np.ndarray,
        audio: np.ndarray,
        *,
        pose_prior: np.ndarray | Sequence[np.ndarray] | None = None,
        seed: int | Sequence[int] = 0,
        **options: Any,
    ) -> np.ndarray:
        """uint8 RGB [B,H,W,3] identity frames + float32 [B,N] 16 kHz audio -> uint8 RGB [B,T,H',W',3] frames,
        T = N // 640 (25 fps).

        `pose_prior` (one uint8 [P,H,W,3] video per identity) is the head motion a model may follow, or None;
        `seed` an int (clip b uses seed + b) or one seed per clip, so a clip's frames do not depend on what it is
        batched with. `options` are the model's own (Wav2Lip's face `boxes`, VASA's gaze...). Components make
        no video: a TypeError says so.
        """
        if self.kind == "component":
            raise TypeError(
                f"{type(self).__name__} is a component (a network other models train against): it generates no "
                "video; generate with a model that needs it"
            )
        identity, audio = generation_inputs(identity, audio, pose_prior)
        seeds = clip_seeds(seed, identity.shape[0])
        out = self._generate(identity, audio, pose_prior=pose_prior, seed=seeds, **options)
        expected = (identity.shape[0], frames_for_audio(audio.shape[1]))
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.ndim != 5 or out.shape[:2] != expected:
            got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
            raise RuntimeError(
                f"{type(self).__name__}.generate made {got}; the contract is uint8 [B,T,H,W,3], (B, T) = {expected}"
            )
        if out.shape[-1] != 3:
            raise RuntimeError(f"{type(self).__name__}.generate made {out.shape[-1]} channels, not 3 (RGB)")
        return out
