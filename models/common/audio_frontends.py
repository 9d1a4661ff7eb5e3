"""Audio front ends: 16 kHz audio -> one embedding per 25 fps video frame, by name, for any model.

API (model-agnostic; docs/audio_frontends.md):
- `build_audio_frontend(name, dim=None, weights=None, **kwargs) -> AudioFrontend`, names in `AUDIO_FRONTENDS`;
- an `AudioFrontend` is an `nn.Module` with `name`, `dim`, `trainable`, `info()` (what to record in results),
  `embed(audio [N]) -> [floor(N / 640), dim]` and `embed_batch(audio [B, N]) -> [B, floor(N / 640), dim]`;
- training splits `embed` in two so that per-clip work happens once, on the data side: `frame_features(audio)`
  (numpy, one row per frame; for a frozen front end the embeddings themselves, cached per clip) and
  `forward(features) -> embeddings` (the trainable part; the identity for a frozen front end). A dataset gets the
  first half without building the module through `audio_feature_extractor(name, weights)`.

Front ends:
- `mel`: the trainable per-frame encoder over Wav2Lip-style log-mel windows (`MelFrameEncoder`, trained with the
  model; 0.2 s per frame, the span of the SDA window);
- `sda`: the official Diffused Heads audio encoder (`audio_encoder.pt`, a TorchScript archive of the
  speech-driven-animation encoder, diffused-heads `main` utils.py `AudioEncoder`; docs/diffused_heads.md),
  frozen, loaded from the registered weights `sda_audio_encoder` (`bench weights import audio_encoder.pt --as
  sda_audio_encoder`) or a file path. Its windowing is reproduced exactly (`sda_embed`).
wav2vec2 / Whisper are not offered: their networks need the `transformers` package and weights that cannot be
imported as single checkpoint files here (docs/audio_frontends.md).
"""

from __future__ import annotations

import abc
import collections
import difflib
import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data.audio import MELS_PER_FRAME, wav2lip_melspectrogram
from data.clip import SAMPLES_PER_FRAME

AUDIO_FRONTENDS: dict[str, str] = {
    "mel": "models.common.audio_frontends:MelFrameEncoder",
    "sda": "models.common.audio_frontends:SDAEncoder",
}


class AudioFrontend(nn.Module, abc.ABC):
    """Base of every front end: see the module docstring for the contract."""

    name: ClassVar[str] = ""
    trainable: ClassVar[bool] = True
    #: the embedding width of a front end whose width is fixed by its weights (None: set at build time)
    fixed_dim: ClassVar[int | None] = None
    dim: int

    @classmethod
    @abc.abstractmethod
    def build(cls, *, dim: int | None = None, weights: str | None = None, **kwargs: Any) -> AudioFrontend:
        """A new front end with embedding width `dim` (trainable ones) or the given `weights` (frozen ones)."""

    @classmethod
    @abc.abstractmethod
    def feature_extractor(cls, weights: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
        """`frame_features` for the data side, without building the trainable part."""

    @abc.abstractmethod
    def frame_features(self, audio: np.ndarray) -> np.ndarray:
        """float32 [N] 16 kHz -> per-frame inputs of `forward`, [floor(N / 640), ...] (numpy)."""

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "dim": int(self.dim), "trainable": bool(self.trainable)}

    def _device(self) -> torch.device:
        return _module_device(self)

    def embed(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 [N] 16 kHz -> [floor(N / 640), dim], on the front end's device."""
        feats = torch.from_numpy(np.ascontiguousarray(self.frame_features(_as_numpy(audio))))
        return self(feats.to(self._device()))

    def embed_batch(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 [B, N] 16 kHz -> [B, floor(N / 640), dim]."""
        audio = _as_numpy(audio)
        if len(audio) == 0:
            return torch.zeros(0, int(audio.shape[-1]) // SAMPLES_PER_FRAME, self.dim, device=self._device())
        feats = np.stack([self.frame_features(a) for a in audio])
        return self(torch.from_numpy(np.ascontiguousarray(feats)).to(self._device()))


def _module_device(module: nn.Module) -> torch.device:
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


def _as_numpy(audio: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    return np.asarray(audio, np.float32)


# ------------------------------------------------------------------------------------------------------- mel

MEL_COLUMNS = 16  # 0.2 s of 80-per-second mel columns: the span of the official SDA encoder's 3,200-sample window


def frame_mel_windows(audio: np.ndarray, n_frames: int | None = None, columns: int = MEL_COLUMNS) -> np.ndarray:
    """float32 [n_frames, 80, columns]: the log-mel columns centred on each video frame (edge-padded);
    n_frames defaults to floor(N / 640)."""
    n_frames = int(len(audio)) // SAMPLES_PER_FRAME if n_frames is None else int(n_frames)
    mel = wav2lip_melspectrogram(audio)
    half = columns // 2
    padded = np.pad(mel, ((0, 0), (half, half + columns)), mode="edge")
    out = np.empty((n_frames, mel.shape[0], columns), np.float32)
    for f in range(n_frames):
        centre = int(round((f + 0.5) * MELS_PER_FRAME))  # the middle of frame f's 40 ms
        out[f] = padded[:, centre : centre + columns]
    return out


@dataclass
class AudioEncoderConfig:
    """Per-frame audio encoder over Wav2Lip-style log-mel windows (80 bins x 16 columns = 0.2 s per frame)."""

    out_dim: int = 256  # the model's audio_dim (Diffused Heads officially: 256 = model_channels)
    width: int = 128
    n_mels: int = 80
    columns: int = MEL_COLUMNS
    kernel: tuple[int, ...] = field(default_factory=lambda: (3, 3, 3))


class MelFrameEncoder(AudioFrontend):
    """`mel`: (..., 80, 16) log-mel window centred on a video frame -> (..., out_dim), trained with the model.

    Stands in for the official frozen SDA encoder when its file is not at hand: same span per frame, same output
    size. State-dict keys `conv.*`, `proj.*`.
    """

    name = "mel"
    trainable = True

    def __init__(self, cfg: AudioEncoderConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or AudioEncoderConfig()
        self.cfg = cfg
        self.dim = cfg.out_dim
        layers: list[nn.Module] = []
        cin = cfg.n_mels
        length = cfg.columns
        for k in cfg.kernel:
            layers += [nn.Conv1d(cin, cfg.width, k, padding=k // 2), nn.GroupNorm(8, cfg.width), nn.SiLU()]
            if length >= 4:
                layers.append(nn.AvgPool1d(2))
                length //= 2
            cin = cfg.width
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Linear(cfg.width * length, cfg.out_dim)

    @classmethod
    def build(cls, *, dim: int | None = None, weights: str | None = None, width: int = 128, **kw: Any):
        if weights:
            raise ValueError(f"audio front end 'mel' is trained with the model and takes no weights (got {weights!r})")
        return cls(AudioEncoderConfig(out_dim=int(dim or 256), width=int(width), **kw))

    @classmethod
    def feature_extractor(cls, weights: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
        return frame_mel_windows

    def frame_features(self, audio: np.ndarray) -> np.ndarray:
        return frame_mel_windows(audio)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        lead = mel.shape[:-2]
        h = self.conv(mel.reshape(-1, *mel.shape[-2:]))
        return self.proj(h.flatten(1)).reshape(*lead, -1)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "weights": "trained with the model"}


# ------------------------------------------------------------------------------------------------------- SDA

# diffused-heads main utils.py AudioEncoder (docs/diffused_heads.md, "The SDA audio encoder")
SDA_WINDOW = 3200  # samples per window, 0.2 s at 16 kHz
SDA_STRIDE = SAMPLES_PER_FRAME  # 640: one window per 25 fps frame
SDA_PAD = (SDA_WINDOW - SDA_STRIDE) // 2  # 1280 zeros on each side (pad_samples = 3200 - 640, split evenly)
SDA_HIDDEN = (2, 1, 256)  # the recurrent state carried from window to window, zeros at the start of a clip
SDA_DIM = 256
SDA_WEIGHTS = "sda_audio_encoder"  # registered weights name (benchmark/weights.py KNOWN)
SDA_FILE = "audio_encoder.pt"
SDA_HOW_TO_GET = (
    "Get audio_encoder.pt (the SDA audio encoder, TorchScript) from the Google Drive archive linked in the "
    "diffused-heads README (main branch; it comes with crema_script.pt), then "
    "`bench weights import audio_encoder.pt --as sda_audio_encoder`."
)
_CACHE_BYTES = 256 << 20  # per-process cache of per-clip embeddings (a 3 s clip: 75 x 256 floats = 77 kB)


def sda_windows(audio: torch.Tensor) -> torch.Tensor:
    """float [N] -> [floor(N / 640), 3200]: the official windows (1,280 zeros each side, stride 640)."""
    n = int(audio.shape[-1]) // SDA_STRIDE
    if n == 0:  # the official cut fails below one frame of audio; no frame, no window
        return audio.new_zeros((0, SDA_WINDOW))
    padded = F.pad(audio.reshape(-1), (SDA_PAD, SDA_PAD))
    # (N + 2560 - 3200) // 640 + 1 = floor(N / 640) windows, as the official cut_n_stack gives
    return padded.unfold(0, SDA_WINDOW, SDA_STRIDE)[:n]


@torch.no_grad()
def sda_embed(model: Callable, audio: torch.Tensor, dim: int = SDA_DIM) -> torch.Tensor:
    """The official SDA embedding of one clip: float32 [N] 16 kHz -> [floor(N / 640), dim].

    Windows go through `model` one at a time, in order, as (1, 1, 3200) with lengths LongTensor([3200]) (on the
    CPU, as officially) and the hidden state the previous window returned (zeros (2, 1, 256) for the first).
    """
    windows = sda_windows(audio)
    hidden = torch.zeros(SDA_HIDDEN, device=audio.device)
    lengths = torch.LongTensor([SDA_WINDOW])
    out = audio.new_zeros((len(windows), dim))
    for i, window in enumerate(windows):
        emb, _, hidden = model(window.reshape(1, 1, SDA_WINDOW), lengths, init_state=hidden)
        if emb.numel() != dim:
            raise ValueError(f"SDA encoder returned an embedding of shape {tuple(emb.shape)}; expected {dim} values")
        out[i] = emb.reshape(-1)
    return out


def resolve_weights(ref: str | None, default: str, how_to_get: str = "") -> tuple[Path, dict[str, Any]]:
    """(path, info) of a front end's weights: `ref` is a file path or a registered weights name (default
    `default`); registered files are checked against their sha256."""
    from metrics import weights as store

    ref = ref or default
    if Path(ref).is_file():
        return Path(ref), {"weights": str(ref), "path": str(ref), "sha256": store.sha256_file(ref)}
    path, entry = store.resolve(ref, how_to_get)
    return path, {"weights": ref, "path": str(path), "sha256": entry.sha256, "source": entry.source}


def check_sda_encoder(model: Callable, source: str) -> None:
    """Raise ValueError naming `source` unless `model` keeps the official call contract: a (1, 1, 3200) window,
    LongTensor([3200]) and init_state (2, 1, 256) -> (embedding of 256 values, anything, hidden (2, 1, 256))."""
    try:
        with torch.no_grad():
            window, hidden = torch.zeros(1, 1, SDA_WINDOW), torch.zeros(SDA_HIDDEN)
            out = model(window, torch.LongTensor([SDA_WINDOW]), init_state=hidden)
    except Exception as err:  # a wrong archive fails in many ways
        raise ValueError(f"{source}: not the SDA audio encoder: calling it the official way failed ({err})") from err
    if not (isinstance(out, tuple | list) and len(out) == 3):
        raise ValueError(f"{source}: not the SDA audio encoder: expected (embedding, _, hidden), got {type(out)}")
    emb, _, hidden = out
    if not isinstance(emb, torch.Tensor) or emb.numel() != SDA_DIM:
        raise ValueError(f"{source}: not the SDA audio encoder: embedding {getattr(emb, 'shape', emb)}, not 256-d")
    if not isinstance(hidden, torch.Tensor) or tuple(hidden.shape) != SDA_HIDDEN:
        raise ValueError(f"{source}: not the SDA audio encoder: hidden state {getattr(hidden, 'shape', hidden)}")


class SDAEncoder(AudioFrontend):
    """`sda`: the official frozen SDA TorchScript encoder; `forward` is the identity on its embeddings."""

    name = "sda"
    trainable = False
    fixed_dim = SDA_DIM

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        path, self.weights_info = resolve_weights(weights, SDA_WEIGHTS, SDA_HOW_TO_GET)
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except Exception as err:
            raise ValueError(f"{path}: not a loadable TorchScript archive ({err}); {SDA_HOW_TO_GET}") from err
        check_sda_encoder(model, str(path))
        self.model = model.eval()
        for p in self.model.parameters():  # ScriptModules have no requires_grad_()
            p.requires_grad_(False)
        self.dim = SDA_DIM
        self._cache: collections.OrderedDict[bytes, np.ndarray] = collections.OrderedDict()
        self._cached_bytes = 0

    @classmethod
    def build(cls, *, dim: int | None = None, weights: str | None = None, **kwargs: Any) -> SDAEncoder:
        if kwargs:
            raise ValueError(f"audio front end 'sda' takes no settings {sorted(kwargs)}")
        if dim is not None and int(dim) != SDA_DIM:
            raise ValueError(f"audio front end 'sda' gives {SDA_DIM}-d embeddings; set audio_dim={SDA_DIM} (got {dim})")
        return cls(weights)

    @classmethod
    def feature_extractor(cls, weights: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
        return shared_frontend("sda", weights).frame_features

    def frame_features(self, audio: np.ndarray) -> np.ndarray:
        """The clip's embeddings, float32 [floor(N / 640), 256]; repeated clips come from a per-process cache."""
        audio = _as_numpy(audio).reshape(-1)
        key = hashlib.blake2b(audio.tobytes(), digest_size=16).digest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        emb = sda_embed(self.model, torch.from_numpy(audio).to(self._device())).cpu().numpy()
        self._cache[key] = emb
        self._cached_bytes += emb.nbytes
        while self._cached_bytes > _CACHE_BYTES and len(self._cache) > 1:
            self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes
        return emb

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return emb

    def info(self) -> dict[str, Any]:
        return {**super().info(), **self.weights_info}


class SDAContract(nn.Module):
    """What `bench weights import ... --as sda_audio_encoder` checks keys against: nothing. The archive is checked
    by its forward contract instead (`read_sda_encoder`)."""


def read_sda_encoder(path: str | Path) -> dict:
    """Reader for `bench weights import`: loads the TorchScript file, checks the official call contract (raises
    ValueError naming the file) and returns the empty mapping that matches `SDAContract`."""
    from models.checkpoints import LoadedStateDict

    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
        raise ValueError(f"{path}: not a TorchScript archive ({err}); the SDA encoder is audio_encoder.pt") from err
    check_sda_encoder(model, str(path))
    out = LoadedStateDict()
    out.source, out.format = str(path), "torchscript"
    return out


# -------------------------------------------------------------------------------------------------- registry

_SHARED: dict[tuple[str, str | None], AudioFrontend] = {}
_NOT_OFFERED = (
    "wav2vec2 / Whisper front ends are not offered: they need the transformers package and weights that cannot be "
    "imported here as checkpoint files with `bench weights import`"
)


def audio_frontend_class(name: str) -> type[AudioFrontend]:
    if name not in AUDIO_FRONTENDS:
        close = difflib.get_close_matches(str(name), AUDIO_FRONTENDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown audio front end {name!r}; known: {', '.join(AUDIO_FRONTENDS)}.{hint} ({_NOT_OFFERED})")
    module, _, attr = AUDIO_FRONTENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def build_audio_frontend(name: str, *, dim: int | None = None, weights: str | None = None, **kwargs: Any):
    """A new front end `name` (frozen ones loaded from `weights`: a registered name or a file, default theirs)."""
    return audio_frontend_class(name).build(dim=dim, weights=weights, **kwargs)


def shared_frontend(name: str, weights: str | None = None) -> AudioFrontend:
    """One CPU instance of a frozen front end per process (datasets and DataLoader workers share it and its
    per-clip cache); never moved to a GPU, so forked workers never touch CUDA."""
    key = (name, weights)
    if key not in _SHARED:
        _SHARED[key] = build_audio_frontend(name, weights=weights)
    return _SHARED[key]


def audio_feature_extractor(name: str, weights: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The data-side half of front end `name`: float32 [N] -> per-frame features (numpy), see module docstring."""
    return audio_frontend_class(name).feature_extractor(weights)
