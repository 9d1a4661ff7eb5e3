"""VASA-style LightningModules: the face latent model (stage 1, `vasa_face`) and the motion generator with the
full pipeline (stage 2, `vasa`, which needs a trained `vasa_face`; `bench run --model vasa` trains both, in
order, each resumable, through the runner's `needs:`).

Stage 1 losses (VASA-1 section 3.1, adapted from MegaPortraits), per batch of (source i, driver j of the same
clip, a frame s of another speaker):
- reconstruction: L1 of D(V^i, z_id^i, pose^i, dyn^i) to I_i and of the cross-frame reenactment
  D(V^i, z_id^i, pose^j, dyn^j) to I_j (motion from j, appearance from i). No perceptual term: it needs VGG/face
  network weights this project does not have.
- pairwise pose/dynamics swap consistency: L1 between D(V^j, z_id^j, pose^i, dyn^j) and D(V^i, z_id^i, pose^i,
  dyn^j) (both should show j's expression under i's pose).
- cross-identity: 1 - cos(E(I_s), E(D(V^s, z_id^s, pose^i, dyn^i))) with the identity embedder E's weights held
  fixed in that term; E is trained on real frames with a speaker-aware InfoNCE (another frame of the same clip
  is the positive, frames of other speakers the negatives), standing in for ArcFace.
- landmarks (not in the paper; see face_latent.py): L1 of the landmark head to the corpus's landmarks.

Departures from the paper, each switchable in VasaFaceConfig, for a model that trains in CPU minutes: the decoder
blends its rendering with the source image warped by the same 3D motion (face-vid2vid's occlusion-aware image
path; always on), the landmark head (`w_landmarks`) and, in `tiny`, openness maps of mouth and eyes drawn from
the landmark head's output (`landmark_guide`), a mouth-box weighted L1 (`w_mouth`), 32x32 faces and no
cross-identity term (`w_cross_id: 0`; the `paper` preset keeps it).

What the tiny preset measured on the synthetic corpus, and what each departure bought: docs/vasa.md.

Stage 2 (section 3.2): x0-prediction MSE on windows of normalised motion latents, condition dropout 0.1 for
audio, gaze, distance and emotion and 0.5 for the previous window (motion and audio together, so the model
knows the first window), random truncation of the audio tail. Sampling: process.py.

Paper presets vs VASA-1 (no official code: what its sections 3.2 and 4 state; table and reasons in
docs/official_recipes.md; pinned by tests/models/test_vasa.py). Equal: 8 layers, d 512, 8 heads (~29M; 27.6M
here), x0 prediction, condition dropout 0.1 / 0.5 (previous window), audio-tail cuts, 50 steps, CFG lambda_A
0.5 and lambda_g 1.0 only, mean head distance, empty emotion. Different:
- audio features: wav2vec2 in VASA-1, log-mel here by default (no wav2vec2 weights can be imported here;
  `audio_features: sda` hears through the frozen pretrained SDA encoder instead).
- default gaze: forward-facing in VASA-1, the training mean here (our landmark gaze label has no known
  "forward" value on real video).
- stage 1: 512x512, ~200M parameters, MegaPortraits' losses + ArcFace in VASA-1; 256x256, ~61M, the losses
  above, the landmark head (gaze / distance labels where a corpus has none) and the image path here.
- not published, so ours: W / K, diffusion steps and schedule, optimisers, learning rates, batch sizes, loss
  weights, dropout, truncation probability, validation, step budgets (VASA-1 gives only ~7 days (face model)
  and ~3 days (diffusion transformer) on 4x RTX A6000): max_steps 500,000 (stage 1) and 300,000 (stage 2).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from data.clip import Clip, frames_for_audio
from models.base import TalkingFaceModule
from models.common.config import Presets, to_config
from models.common.inputs import clip_seeds, generation_inputs
from models.common.steps import log_losses
from models.vasa.face_latent import POSE_DIM, FaceLatentNet
from models.vasa.motion_dit import MotionConditions, MotionDiT, audio_feature_fn
from models.vasa.process import CosineSchedule, iter_motion_windows, sampling_controls
from models.vasa.windows import FacePairWindows, MotionWindows, from_model_image, to_model_image

LABEL = "VASA-style"


# ------------------------------------------------------------------------------------------------- stage 1


@dataclass
class VasaFaceConfig(Presets):
    """Face latent model hyperparameters; defaults are the `paper` preset.

    The paper's face model has ~200M parameters at 512x512 (VoxCeleb2, 7 days on 4 A6000s); `paper` keeps its
    structure at 256x256 with a 32-channel, 16-deep volume, which is what one GPU trains in reasonable time.
    """

    preset_source: ClassVar[str] = "vasa_face"  # its presets: configs/models/vasa_face.yaml

    resolution: int = 256
    channels: int = 32
    max_channels: int = 256
    vol_channels: int = 32
    vol_depth: int = 16
    id_dim: int = 128
    dyn_dim: int = 64
    embed_dim: int = 128
    max_angle_deg: float = 45.0
    vol_stride: int = 4  # appearance volume at resolution / vol_stride
    landmark_guide: bool = False  # decoder also sees mouth/eye openness maps from the landmark head (not in VASA-1)
    lr: float = 2e-4  # MegaPortraits' Adam learning rate
    batch_size: int = 16
    w_recon: float = 1.0
    w_consistency: float = 1.0
    w_cross_id: float = 0.1
    w_embed: float = 0.1
    w_landmarks: float = 1.0  # 0 disables the (non-paper) landmark head's loss
    w_mouth: float = 0.0  # extra L1 weight inside the mouth box (landmarks 48-67 + margin), where landmarks exist
    temperature: float = 0.1  # identity-embedder InfoNCE temperature

    def net_kwargs(self) -> dict[str, Any]:
        keys: tuple[str, ...] = ("resolution", "channels", "max_channels", "vol_channels", "vol_depth")
        keys += ("id_dim", "dyn_dim", "embed_dim", "max_angle_deg", "vol_stride", "landmark_guide")
        return {k: getattr(self, k) for k in keys}


class VasaFaceModule(TalkingFaceModule):
    """Stage 1: the face latent model `self.net` (FaceLatentNet) and its losses (module docstring).

    Batches are `models.vasa.windows.FacePairWindows` items. It has no `generate`: the talking-face pipeline is
    `VasaModule`, which needs this stage.
    """

    kind = "component"
    crop = "vasa"  # data.faces crop: the aligned head at the face model's paper resolution
    trainable = True
    config_class = VasaFaceConfig

    def __init__(self, cfg: VasaFaceConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = to_config(VasaFaceConfig, cfg)
        self.save_hyperparameters({"cfg": dataclasses.asdict(self.cfg)})
        self.net = FaceLatentNet(**self.cfg.net_kwargs())

    def train_dataset(self, clips: Sequence[Clip], *, seed: int, fixed: bool) -> FacePairWindows:
        return FacePairWindows(clips, seed=seed, fixed=fixed, resolution=self.cfg.resolution)

    def losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        net, c = self.net, self.cfg
        src, drv, other = batch["src"], batch["drv"], batch["other"]
        b = src.shape[0]
        cross = c.w_cross_id > 0  # the cross-identity term needs a third frame and a fifth decoder image
        lat = net.encode(torch.cat([src, drv, other] if cross else [src, drv]))
        pi, pj = lat.pose[:b], lat.pose[b : 2 * b]
        ii, ij = lat.z_id[:b], lat.z_id[b : 2 * b]
        di, dj = lat.dyn[:b], lat.dyn[b : 2 * b]
        # one decoder pass for the images the losses need: appearance from (i, i, j, i[, s])
        which = [0, 0, 1, 0, 2] if cross else [0, 0, 1, 0]
        index = torch.cat([torch.arange(b) + k * b for k in which]).to(src.device)
        poses, dyns = [pi, pj, pi, pi, pi][: len(which)], [di, dj, dj, dj, di][: len(which)]
        images = net.decode(lat.select(index), torch.cat(poses), torch.cat(dyns)).split(b)
        self_rec, cross_rec, pose_swap, dyn_swap = images[:4]
        recon = F.l1_loss(self_rec, src) + F.l1_loss(cross_rec, drv)
        if c.w_mouth > 0 and bool(batch["has_lm"].any()):
            has = batch["has_lm"].bool()
            recon = recon + c.w_mouth * (
                _masked_l1(self_rec[has], src[has], mouth_mask(batch["src_lm"][has], src.shape[-1]))
                + _masked_l1(cross_rec[has], drv[has], mouth_mask(batch["drv_lm"][has], drv.shape[-1]))
            )
        consistency = F.l1_loss(pose_swap, dyn_swap)
        id_loss = recon.new_zeros(())
        if cross:
            frozen = {k: v.detach() for k, v in net.id_embedder.named_parameters()}
            sim = (net.embed_identity(images[4], frozen) * net.embed_identity(other, frozen)).sum(-1)
            id_loss = (1.0 - sim).mean()
        embed = self._embedder_loss(batch) if c.w_embed > 0 else recon.new_zeros(())
        out = {"recon": recon, "consistency": consistency, "cross_id": id_loss, "embed": embed}
        has = batch["has_lm"].bool()
        if c.w_landmarks > 0 and bool(has.any()):
            lm = net.landmarks(torch.cat([ii, ij]), torch.cat([pi, pj]), torch.cat([di, dj]))
            target = torch.cat([batch["src_lm"], batch["drv_lm"]])
            mask = torch.cat([has, has])
            out["landmarks"] = F.l1_loss(lm[mask], target[mask])
        else:
            out["landmarks"] = recon.new_zeros(())
        out["loss"] = (
            c.w_recon * recon
            + c.w_consistency * consistency
            + c.w_cross_id * id_loss
            + c.w_embed * embed
            + c.w_landmarks * out["landmarks"]
        )
        return out

    def _embedder_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """InfoNCE: anchor = source frame, positive = the driver frame of its clip, negatives = other speakers."""
        b = batch["src"].shape[0]
        e = self.net.embed_identity(torch.cat([batch["src"], batch["drv"], batch["other"]]))
        anchor, keys = e[:b], e[b:]
        key_speaker = torch.cat([batch["speaker"], batch["other_speaker"]])
        logits = anchor @ keys.T / self.cfg.temperature
        same = batch["speaker"][:, None] == key_speaker[None]
        positive = torch.zeros_like(same)
        positive[torch.arange(b), torch.arange(b)] = True
        logits = logits.masked_fill(same & ~positive, float("-inf"))  # same speaker elsewhere: not a negative
        return F.cross_entropy(logits, torch.arange(b, device=logits.device))

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        log_losses(self, "train", out, batch["src"].shape[0])
        return out["loss"]

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        log_losses(self, "val", self.losses(batch), batch["src"].shape[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, betas=(0.5, 0.999))


def mouth_mask(landmarks: torch.Tensor, size: int, margin: float = 0.1) -> torch.Tensor:
    """[B,1,size,size] float mask of the box around the lips (landmarks 48-67, normalised), widened by `margin`."""
    lips = landmarks[:, 48:68]
    lo, hi = lips.amin(1) - margin, lips.amax(1) + margin  # [B, 2] (x, y)
    coords = torch.linspace(-1, 1, size, device=landmarks.device)
    inside_x = (coords[None] >= lo[:, :1]) & (coords[None] <= hi[:, :1])  # [B, size]
    inside_y = (coords[None] >= lo[:, 1:]) & (coords[None] <= hi[:, 1:])
    return (inside_y[:, None, :, None] & inside_x[:, None, None, :]).float()


def _masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((a - b).abs() * mask).sum() / (mask.sum() * a.shape[1]).clamp(min=1.0)


# ------------------------------------------------------------------------------------------------- stage 2


@dataclass
class VasaConfig(Presets):
    """Motion generator and pipeline hyperparameters; defaults are the `paper` preset.

    window / context (W, K): VASA-1 does not state them; 50 / 10 frames (2 s / 0.4 s at 25 fps) here.
    gaze (theta, phi) radians, distance (see models/vasa/windows.py for both units), emotion [emotion_dim]:
    null = training mean gaze and distance, empty emotion offset (VASA-1: forward-facing gaze, mean distance,
    empty emotion; the module docstring says why the gaze default differs).
    """

    preset_source: ClassVar[str] = "vasa"  # its presets: configs/models/vasa.yaml
    generation_fields: ClassVar[tuple[str, ...]] = (
        "sample_steps", "cfg_audio", "cfg_gaze", "cfg_distance", "cfg_emotion", "cfg_prev",
        "gaze", "distance", "emotion", "decode_batch",
    )  # fmt: skip

    face_preset: str = "paper"  # the stage-1 preset to build when no trained face model is passed
    window: int = 50
    context: int = 10
    d_model: int = 512
    layers: int = 8
    heads: int = 8
    dropout: float = 0.1
    emotion_dim: int = 8  # HSEmotion's 8 classes (VASA-1: mean emotion coefficients)
    audio_features: str = "mel"  # motion_dit.audio_feature_fn: mel | a frozen pretrained front end (sda)
    cond_dropout: float = 0.1
    prev_dropout: float = 0.5
    truncate_prob: float = 0.1  # probability of cutting a random audio tail off a training window
    diffusion_steps: int = 1000
    sample_steps: int = 50
    cfg_audio: float = 0.5
    cfg_gaze: float = 1.0
    cfg_distance: float = 0.0
    cfg_emotion: float = 0.0
    cfg_prev: float = 0.0
    gaze: tuple[float, float] | None = None
    distance: float | None = None
    emotion: list[float] | None = None
    lr: float = 1e-4
    batch_size: int = 64
    decode_batch: int = 32  # frames per decoder pass in generate()

    def guidance(self) -> dict[str, float]:
        return {
            "audio": self.cfg_audio,
            "gaze": self.cfg_gaze,
            "distance": self.cfg_distance,
            "emotion": self.cfg_emotion,
            "prev": self.cfg_prev,
        }


class VasaModule(TalkingFaceModule):
    """Stage 2 and the pipeline: `generate` = encode the identity image -> sample motion from audio -> decode.

    `self.net` is the MotionDiT; `self.face` a frozen private copy of the stage-1 FaceLatentNet (checkpoint keys
    "face.*"). Normalisation statistics of motion, gaze and distance (train split) are buffers saved with it.
    """

    crop = "vasa"  # the framing of its face model (stage 1)
    trainable = True
    config_class = VasaConfig
    label = LABEL
    stats_ready: torch.Tensor  # buffer: whether set_stats has run (besides the {motion,gaze,distance}_{mean,std})

    def __init__(
        self,
        cfg: VasaConfig | Mapping[str, Any] | None = None,
        face: VasaFaceModule | FaceLatentNet | None = None,
        face_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        cfg = to_config(VasaConfig, cfg)
        try:
            _, audio_dim = audio_feature_fn(cfg.audio_features)
        except KeyError as err:
            raise ValueError(str(err.args[0])) from None
        self._face_given = face is not None
        if isinstance(face, VasaFaceModule):
            face_cfg, face = dataclasses.asdict(face.cfg), face.net
        if face is None:
            fcfg = to_config(VasaFaceConfig, face_cfg) if face_cfg else VasaFaceConfig.preset(cfg.face_preset)
            face_cfg, face = dataclasses.asdict(fcfg), FaceLatentNet(**fcfg.net_kwargs())
        elif not isinstance(face, FaceLatentNet):
            raise TypeError(f"face must be a VasaFaceModule or FaceLatentNet, got {type(face).__name__}")
        else:
            face = copy.deepcopy(face)
        self.cfg = cfg
        self.save_hyperparameters({"cfg": dataclasses.asdict(cfg), "face_cfg": face_cfg})
        self.face = face.requires_grad_(False).eval()
        self.motion_dim = POSE_DIM + face.dyn_dim
        self.net = MotionDiT(
            self.motion_dim,
            audio_dim,
            window=cfg.window,
            context=cfg.context,
            d_model=cfg.d_model,
            layers=cfg.layers,
            heads=cfg.heads,
            emotion_dim=cfg.emotion_dim,
            dropout=cfg.dropout,
        )
        self.schedule = CosineSchedule(cfg.diffusion_steps)
        for name, dim in (("motion", self.motion_dim), ("gaze", 2), ("distance", 1)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        self.register_buffer("stats_ready", torch.tensor(False))

    def train(self, mode: bool = True) -> VasaModule:
        super().train(mode)
        self.face.eval()  # frozen: always in eval mode
        return self

    @property
    def audio_frontend(self):
        """The frozen pretrained front end the motion model hears through, recorded with the results (None for
        its own mel features)."""
        if self.cfg.audio_features == "mel":
            return None
        from models.common.audio_frontends import shared_frontend

        return shared_frontend(self.cfg.audio_features)

    def train_dataset(self, clips: Sequence[Clip], *, seed: int, fixed: bool) -> MotionWindows:
        return MotionWindows(
            clips,
            seed=seed,
            fixed=fixed,
            face_net=self.face,
            window=self.cfg.window,
            context=self.cfg.context,
            audio_features=self.cfg.audio_features,
            emotion_dim=self.cfg.emotion_dim,
        )

    # ----- normalisation ---------------------------------------------------------------------------------
    def set_stats(self, stats: Mapping[str, np.ndarray]) -> None:
        """Take the normalisation of a MotionWindows training set (its `stats()`)."""
        for k, v in stats.items():
            getattr(self, k).copy_(torch.as_tensor(v, dtype=torch.float32))
        self.stats_ready.fill_(True)

    def on_fit_start(self) -> None:
        dm: Any = getattr(self.trainer, "datamodule", None)
        train_set = getattr(dm, "train_set", None)
        if train_set is not None and not hasattr(train_set, "stats") and hasattr(dm, "statistics_set"):
            train_set = dm.statistics_set()  # a streamed corpus: the normalisation of a sample of its clips
        if train_set is not None and hasattr(train_set, "stats"):
            self.set_stats(train_set.stats())
        if not self._face_given and not bool(self.stats_ready):
            warnings.warn("VasaModule: training without a trained face model (stage 1)", stacklevel=2)

    def _norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return (x - getattr(self, f"{name}_mean")) / getattr(self, f"{name}_std")

    def _denorm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return x * getattr(self, f"{name}_std") + getattr(self, f"{name}_mean")

    # ----- training ----------------------------------------------------------------------------------------
    def _conditions(self, batch: Mapping[str, torch.Tensor], train: bool) -> MotionConditions:
        c = self.cfg
        b, w = batch["audio"].shape[:2]
        dev = batch["audio"].device

        def keep(p: float) -> torch.Tensor:
            return torch.rand(b, device=dev) >= p if train else torch.ones(b, dtype=torch.bool, device=dev)

        valid = torch.ones(b, w, dtype=torch.bool, device=dev)
        if train and c.truncate_prob > 0:
            cut = torch.rand(b, device=dev) < c.truncate_prob
            length = torch.randint(1, w, (b,), device=dev)  # frames kept
            valid &= ~(cut[:, None] & (torch.arange(w, device=dev)[None] >= length[:, None]))
        return MotionConditions(
            audio=batch["audio"],
            audio_valid=valid,
            prev_motion=self._norm("motion", batch["prev_motion"]),
            prev_audio=batch["prev_audio"],
            gaze=self._norm("gaze", batch["gaze"]),
            distance=self._norm("distance", batch["distance"]),
            emotion=batch["emotion"],
            keep={
                "audio": keep(c.cond_dropout),
                "prev": batch["has_prev"].bool() & keep(c.prev_dropout),
                "gaze": keep(c.cond_dropout),
                "distance": keep(c.cond_dropout),
                "emotion": batch["has_emotion"].bool() & keep(c.cond_dropout),
            },
        )

    def diffusion_loss(self, batch: Mapping[str, torch.Tensor], train: bool = True) -> torch.Tensor:
        x0 = self._norm("motion", batch["motion"])
        b = x0.shape[0]
        t = torch.randint(0, self.schedule.num_steps, (b,), device=x0.device)
        x_t = self.schedule.q_sample(x0, t, torch.randn_like(x0))
        return F.mse_loss(self.net(x_t, t, self._conditions(batch, train)), x0)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.diffusion_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["motion"].shape[0])
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        g = torch.get_rng_state()
        torch.manual_seed(batch_idx)  # the same timesteps and noise at every validation
        loss = self.diffusion_loss(batch, train=False)
        torch.set_rng_state(g)
        self.log("val/loss", loss, batch_size=batch["motion"].shape[0], sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.net.parameters(), lr=self.cfg.lr, weight_decay=0.01)

    # ----- generation --------------------------------------------------------------------------------------
    def _check_inputs(self, identity: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        identity, audio = generation_inputs(identity, audio)
        self._check_length(audio)
        return identity, audio

    @staticmethod
    def _check_length(audio: np.ndarray) -> None:
        if frames_for_audio(audio.shape[1]) == 0:
            raise ValueError(f"audio of {audio.shape[1]} samples is shorter than one frame (640 samples)")

    @torch.no_grad()
    def motion_iter(
        self,
        audio: np.ndarray,
        *,
        seed: int | Sequence[int] = 0,
        gaze=None,
        distance=None,
        emotion=None,
        first_window: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Denormalised motion latents [B, n, 6+Z], window by window, for audio float32 [B, N]; `first_window`
        frames in the first (process.iter_motion_windows; None: the config's window)."""
        if not bool(self.stats_ready):
            warnings.warn("VasaModule: motion statistics were never set (untrained model)", stacklevel=2)
        feature_fn, _ = audio_feature_fn(self.cfg.audio_features)
        feats = torch.from_numpy(np.stack([feature_fn(a) for a in audio])).to(self.device)
        c = self.cfg
        gaze, distance = c.gaze if gaze is None else gaze, c.distance if distance is None else distance
        emotion = c.emotion if emotion is None else emotion
        g, d, e = sampling_controls(len(audio), gaze, distance, emotion, c.emotion_dim, self._norm, self.device)
        gens = [torch.Generator().manual_seed(s) for s in clip_seeds(seed, len(audio))]
        for x in iter_motion_windows(
            self.net,
            self.schedule,
            feats,
            g,
            d,
            e,
            steps=self.cfg.sample_steps,
            scales=self.cfg.guidance(),
            generator=gens,
            first_window=first_window,
        ):
            yield self._denorm("motion", x)

    @torch.no_grad()
    def encode_identity(self, identity: np.ndarray):
        return self.face.encode(to_model_image(identity, self.face.resolution).to(self.device))

    @torch.no_grad()
    def decode_motion(self, latents, b: int, motion: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """Frames uint8 [n, H, W, 3] of identity `b` under motion [n, 6+Z]."""
        import cv2

        frames = []
        for s in range(0, len(motion), self.cfg.decode_batch):
            m = motion[s : s + self.cfg.decode_batch]
            source = latents.select(torch.full((len(m),), b, dtype=torch.long, device=m.device))
            frames.append(from_model_image(self.face.decode(source, m[:, :POSE_DIM], m[:, POSE_DIM:])))
        out = np.concatenate(frames)
        if out.shape[1:3] != size:
            out = np.stack([cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for f in out])
        return out

    def stream(
        self,
        identity: np.ndarray,
        audio: np.ndarray,
        *,
        seed: int | Sequence[int] = 0,
        gaze=None,
        distance=None,
        emotion=None,
        first_window: int | None = None,
    ) -> Iterator[np.ndarray]:
        """Streaming mode: yield uint8 [B, n, H, W, 3] window by window (n = W frames, fewer for the last; the
        first `first_window` frames when given: a shorter wait for the first frame, docs/vasa.md)."""
        identity, audio = self._check_inputs(identity, audio)
        was_training = self.training
        self.eval()
        try:
            lat = self.encode_identity(identity)
            size = identity.shape[1:3]
            windows = self.motion_iter(
                audio, seed=seed, gaze=gaze, distance=distance, emotion=emotion, first_window=first_window
            )
            for motion in windows:
                yield np.stack([self.decode_motion(lat, b, motion[b], size) for b in range(len(identity))])
        finally:
            self.train(was_training)

    def _generate(
        self,
        identity: np.ndarray,
        audio: np.ndarray,
        *,
        pose_prior: np.ndarray | Sequence[np.ndarray] | None = None,
        seed: int | Sequence[int] = 0,
        gaze: tuple[float, float] | None = None,
        distance: float | None = None,
        emotion: list[float] | None = None,
        first_window: int | None = None,
    ) -> np.ndarray:
        """uint8 [B,H,W,3] identity + float32 [B,N] audio -> uint8 [B,T,H,W,3], T = N // 640 (docs/clip_contract.md).

        Offline mode: the whole clip's motion first, then every frame decoded in batches; equal to the
        concatenated `stream()` windows for the same seed. `pose_prior` is unused (one identity frame is all
        the method needs). gaze / distance / emotion override the config's controls (None: the config's);
        `first_window` is the streaming option of `stream` (the same frames as its windows).
        """
        self._check_length(audio)
        was_training = self.training
        self.eval()
        try:
            lat = self.encode_identity(identity)
            motion = torch.cat(
                list(
                    self.motion_iter(
                        audio, seed=seed, gaze=gaze, distance=distance, emotion=emotion, first_window=first_window
                    )
                ),
                dim=1,
            )
            size = identity.shape[1:3]
            out = np.stack([self.decode_motion(lat, b, motion[b], size) for b in range(len(identity))])
        finally:
            self.train(was_training)
        assert out.shape[1] == frames_for_audio(audio.shape[1])
        return out

    @torch.no_grad()
    def motion_landmarks(self, identity: np.ndarray, motion: torch.Tensor) -> np.ndarray:
        """The landmark head's 68 landmarks, pixel coordinates of `identity`, for motion [B, T, 6+Z]."""
        lat = self.encode_identity(np.asarray(identity))
        t = motion.shape[1]
        z = lat.z_id[:, None].expand(-1, t, -1)
        lm = self.face.landmarks(z, motion[..., :POSE_DIM], motion[..., POSE_DIM:]).cpu().numpy()
        h, w = np.asarray(identity).shape[1:3]
        return (lm + 1.0) / 2.0 * np.array([w - 1, h - 1], np.float32)
