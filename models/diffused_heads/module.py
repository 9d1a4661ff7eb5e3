"""LightningModule for Diffused Heads (Stypulkowski et al., WACV 2024): training and frame-by-frame generation.

Training (official lightning_modules/model.py, configs/config.yaml; docs/diffused_heads.md): a random
step t of the T = 1000 cosine chain, loss L_simple + 1e-4 L_vlb + 0.2 L_lip, Adam 5e-5 with StepLR gamma 0.8
decaying `lr_decays` = 18 times over the run, an optional EMA of the UNet weights (used for generation when on),
precision and DDP through the trainer settings. Audio enters through a front end of models/common/audio_frontends.py
(`audio_frontend`): `mel` is trained with the UNet, `sda` is the official frozen encoder (its embeddings are
computed once per clip on the data side); `generate(..., audio_emb=...)` takes external embeddings instead.
Checkpoints: `checkpoint_params(path)` says which params a file needs, `load_checkpoint(path)` reads every official
and talkbench layout (models/diffused_heads/checkpoints.py; docs/diffused_heads.md).

Generation: the identity frame is the first frame, every x_T is drawn up front from the seed, frames are sampled
one after the other with the last `n_motion_frames` generated frames as motion input, batched across clips.

Presets. `paper` is the official recipe (configs/config.yaml of the `train` branch): 128x128, model_channels 256,
channel_mult 1-2-3, 2 res blocks, attention at 32x32 with 64-channel heads, dropout 0.1, GroupNorm 32, 2 motion
frames, 2 audio embeddings per side, T = 1000, eps prediction with learned variance, vlb 1e-4, lip 0.2 with a 5 px
margin, random identity frame, Adam 5e-5, StepLR gamma 0.8 x 18, batch 10 per device, no EMA, 100 respaced
ancestral steps at generation (main sample.py's recommendation), no motion-frame re-seeding. Where it differs from
the official code, and why:
- audio front end `mel` (a log-mel encoder trained with the UNet) instead of the frozen SDA embeddings: the SDA
  file is a separate download many users lack, and a paper preset that cannot be built without it would not run
  at all; `audio_frontend: sda` (after `bench weights import audio_encoder.pt --as sda_audio_encoder`) restores it,
  and is what an official checkpoint implies;
- grayscale motion frames (the train config); the released CREMA model takes RGB ones: the dataset overlay of
  configs/models/diffused_heads.yaml sets `grayscale_motion` per corpus (CREMA RGB, LRW grayscale);
- run length in optimiser steps (trainer.max_steps 500k) instead of epochs (n_epochs 5000; the config's comment
  gives 3000 for CREMA): our streams have no epochs; the 18 LR decays are spread over whichever length is set, and
  happen at step, not epoch, boundaries;
- mouth box from the target frame's landmarks (`lip_landmarks: target`); the official loader reads the identity
  frame's (a derived quirk, docs/diffused_heads.md): `lip_landmarks: identity` reproduces it;
- training clips are drawn with replacement (a clip, then a frame pair), the official loader visits every video
  once per epoch: the same distribution per item;
- frames are resized with INTER_AREA on uint8 (official: torchvision Resize(128) on [-1, 1] floats) from our face
  crops (official: face-processor alignment, data/ pipeline), and outputs resized back to the clip's size with
  bicubic interpolation and rounded (official: 127 x + 127, cv2.resize x2 to 256);
- validation is the training losses on held-out windows every val_check_interval; the official run samples videos
  only every 5000 epochs, which its schedule never reaches;
- the seed is run.seed (official 2137), the checkpointing and logging are the suite's.
`tiny` is a CPU-minutes model that is NOT the paper's, built to learn lip-sync in a few hundred optimiser steps on
a shared 2-core CPU; what it changes, and why:
- the UNet runs at 32x32 (frames resized down with INTER_AREA, outputs resized back up bicubically), widths
  16-32-64, one res block per level (training cost);
- x0 prediction (improved-diffusion START_X) instead of eps, read as a change of the identity frame
  (`identity_residual`): the untrained model already returns the identity frame, so no step is spent learning to
  draw a face, and few-step DDIM gives clean frames (eps prediction after ~200 steps gave noise-dominated faces);
- motion frames with their lower half hidden (`motion_mask: lower_half`): with the mouth visible, copying the
  previous frame's mouth is the best predictor early on and the short run never learns audio;
- lip-loss weight 1.0 (0.2 officially), Adam 1e-3 with StepLR every 300 steps (`lr_step_every`), batch 16;
- 5 DDIM steps at generation (measured: the fastest sampler whose clips stay inside the official 1000-step
  chain's bootstrap intervals, reports/dh_samplers), motion frames re-seeded with the identity frame every 10
  frames.
Every one of these is a config field, so each can be switched back to the paper's value on its own.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig

from data.clip import Clip, frames_for_audio
from models.base import TalkingFaceModule
from models.checkpoints import CheckpointError, check_state_dict
from models.common.audio_frontends import AudioFrontend, build_audio_frontend
from models.common.config import Presets, to_config
from models.common.inputs import clip_seeds
from models.common.steps import log_losses
from models.diffused_heads.checkpoints import DiffusedHeadsCheckpoint, implied_params, read_dh_checkpoint
from models.diffused_heads.nets import DiffusedHeadsUNet, IdentityResidual, UNetConfig
from models.diffused_heads.process import (
    MOTION_MASKS,
    PREDICTIONS,
    SAMPLERS,
    GaussianDiffusion,
    SamplerConfig,
    autoregressive_sample,
    lip_loss,
    mouth_boxes,
    to_grayscale,
    vlb_terms,
)
from models.diffused_heads.windows import DiffusedHeadsWindows, from_model, to_model


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


@dataclass
class DiffusedHeadsConfig(Presets):
    """Hyperparameters; defaults are the `paper` preset (official configs/config.yaml)."""

    preset_source: ClassVar[str] = "diffused_heads"  # its presets: configs/models/diffused_heads.yaml
    generation_fields: ClassVar[tuple[str, ...]] = (
        "sampler", "sample_steps", "ddim_eta", "segment_len", "generate_batch_size",
    )  # fmt: skip

    image_size: int = 128  # internal resolution of the UNet (frames are resized to it and back)
    model_channels: int = 256
    channel_mult: tuple[int, ...] = (1, 2, 3)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32,)
    num_heads: int = 4
    num_head_channels: int = 64
    dropout: float = 0.1
    norm_groups: int = 32
    grayscale_motion: bool = True
    n_motion_frames: int = 2
    n_audio_motion_embs: int = 2  # Table 3's m_y: audio embeddings on each side of the frame
    audio_dim: int = 256  # per-frame audio embedding size (official SDA: 256 = model_channels)
    # models.common.audio_frontends: mel (trained with the UNet; NOT the paper's) | sda (the official frozen encoder)
    audio_frontend: str = "mel"
    audio_frontend_weights: str | None = None  # frozen front ends: registered name or file (None: sda_audio_encoder)
    audio_encoder_width: int = 128  # mel front end only
    n_timesteps: int = 1000
    prediction: str = "eps"  # process.PREDICTIONS: eps (official) | x0 (improved-diffusion START_X; tiny preset)
    motion_mask: str = "none"  # process.MOTION_MASKS: none (paper) | lower_half (tiny preset; NOT the paper's)
    identity_residual: bool = False  # x0 = identity frame + network output (nets.IdentityResidual; NOT the paper's)
    vlb_weight: float = 1e-4
    lip_weight: float = 0.2
    lip_margin: int = 5  # px added on each side of the mouth box, at the internal resolution
    lip_landmarks: str = "target"  # target | identity (the official loader's landmarks of the identity frame)
    identity_frame: str = "random"  # training identity frame: random (official) | first
    lr: float = 5e-5
    lr_gamma: float = 0.8
    lr_decays: int | None = 18  # StepLR decays spread over trainer.max_steps (official: every n_epochs // 18 epochs)
    lr_step_every: int | None = None  # a fixed decay period in optimiser steps instead (tiny 300; None / 0: lr_decays)
    ema_decay: float | None = None  # EMA of the UNet weights; None = off
    batch_size: int = 10  # per device, official
    sampler: str = "ancestral"  # process.SAMPLERS: ancestral (official) | ddim
    sample_steps: int = 100  # respaced chain length at generation (official main: 100; gen_test: 200)
    ddim_eta: float = 0.0
    segment_len: int | None = None  # re-seed a motion frame with the identity frame every N frames (None = off)
    generate_batch_size: int = 16  # clips sampled together in generate()

    def unet_config(self) -> UNetConfig:
        return UNetConfig(
            image_size=self.image_size,
            model_channels=self.model_channels,
            channel_mult=tuple(self.channel_mult),
            num_res_blocks=self.num_res_blocks,
            attention_resolutions=tuple(self.attention_resolutions),
            num_heads=self.num_heads,
            num_head_channels=self.num_head_channels,
            dropout=self.dropout,
            norm_groups=self.norm_groups,
            grayscale_motion=self.grayscale_motion,
            n_motion_frames=self.n_motion_frames,
            n_audio_motion_embs=self.n_audio_motion_embs,
            audio_dim=self.audio_dim,
        )

    def sampler_config(self) -> SamplerConfig:
        return SamplerConfig(method=self.sampler, steps=self.sample_steps, eta=self.ddim_eta)


class DiffusedHeadsModule(TalkingFaceModule):
    """Diffused Heads: `self.net` is the UNet (official key names), `self.audio_frontend` the per-frame audio front
    end (registered as `self.audio_encoder` when trainable; a frozen one is kept out of the state dict and the
    optimiser).

    Batches are `windows.DiffusedHeadsWindows` items. Logs train/simple,
    train/vlb, train/lip, train/loss and the same under val/.
    """

    crop = "diffused_heads"  # data.faces crop: the 128 px head aligned on the eyes (official face-processor framing)
    trainable = True
    config_class = DiffusedHeadsConfig
    _frozen_frontend: AudioFrontend | None  # set in __init__ with object.__setattr__ (no submodule)

    def __init__(self, cfg: DiffusedHeadsConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        cfg = to_config(DiffusedHeadsConfig, cfg)
        if cfg.lip_landmarks not in ("target", "identity"):
            raise ValueError(f"lip_landmarks must be 'target' or 'identity', got {cfg.lip_landmarks!r}")
        if cfg.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {cfg.prediction!r}")
        if cfg.identity_residual and cfg.prediction != "x0":
            raise ValueError("identity_residual needs prediction 'x0' (it adds the identity frame to the x0 output)")
        if cfg.motion_mask not in MOTION_MASKS:
            raise ValueError(f"motion_mask must be one of {sorted(MOTION_MASKS)}, got {cfg.motion_mask!r}")
        if cfg.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {cfg.sampler!r}")
        if not cfg.lr_step_every and not cfg.lr_decays:
            raise ValueError("set lr_decays (decays spread over trainer.max_steps, paper 18) or lr_step_every (> 0)")
        self.cfg = cfg
        self.save_hyperparameters({"cfg": dataclasses.asdict(cfg)})
        self.net = DiffusedHeadsUNet(cfg.unet_config())
        frontend = build_audio_frontend(
            cfg.audio_frontend,
            dim=cfg.audio_dim,
            weights=cfg.audio_frontend_weights,
            **({"width": cfg.audio_encoder_width} if cfg.audio_frontend == "mel" else {}),
        )
        if frontend.dim != cfg.audio_dim:
            dim = frontend.dim
            raise ValueError(f"audio front end {cfg.audio_frontend!r} gives {dim}-d embeddings: set audio_dim={dim}")
        self.audio_encoder: AudioFrontend | None = frontend if frontend.trainable else None
        # a frozen front end is no submodule: not saved with the model, not optimised, not moved by Lightning
        object.__setattr__(self, "_frozen_frontend", None if frontend.trainable else frontend.requires_grad_(False))
        self.ema_net = None
        if cfg.ema_decay is not None:
            self.ema_net = copy.deepcopy(self.net).requires_grad_(False)
        self.diffusion = GaussianDiffusion.cosine(cfg.n_timesteps, cfg.prediction)
        self.backend: torch.nn.Module | None = None  # a TorchScript UNet used instead of self.net (use_torchscript)

    @property
    def audio_frontend(self) -> AudioFrontend:
        """The audio front end (models/common/audio_frontends.py); `.info()` says what to record in results."""
        frontend = self.audio_encoder if self.audio_encoder is not None else self._frozen_frontend
        assert frontend is not None  # __init__ sets one of the two
        return frontend

    def train_dataset(self, clips: Sequence[Clip], *, seed: int, fixed: bool) -> DiffusedHeadsWindows:
        return DiffusedHeadsWindows(
            clips,
            seed=seed,
            fixed=fixed,
            image_size=self.cfg.image_size,
            n_motion_frames=self.cfg.n_motion_frames,
            n_audio_motion_embs=self.cfg.n_audio_motion_embs,
            identity_frame=self.cfg.identity_frame,
            audio_frontend=self.cfg.audio_frontend,
            audio_frontend_weights=self.cfg.audio_frontend_weights,
        )

    # ----- conditioning ----------------------------------------------------------------------------------------
    def motion_input(self, motion: torch.Tensor) -> torch.Tensor:
        """(B, n, 3, S, S) RGB motion frames -> (B, n * motion_channels, S, S) as the UNet takes them."""
        b, n = motion.shape[:2]
        flat = motion.flatten(0, 1)
        if self.cfg.grayscale_motion:
            flat = to_grayscale(flat)
        mask = MOTION_MASKS[self.cfg.motion_mask]
        if mask is not None:
            flat = mask(flat)
        return flat.reshape(b, n * flat.shape[1], *flat.shape[2:])

    def encode_audio(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame front-end features (..., *feature_shape) -> (..., audio_dim): the mel encoder runs here; a
        frozen front end's embeddings were computed on the data side and pass through."""
        return self.audio_frontend(features)

    # ----- training --------------------------------------------------------------------------------------------
    def losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x0 = batch["x0"]
        b = x0.shape[0]
        # official forward: no respacing in training, t uniform over the T steps
        idx = torch.randint(self.diffusion.num_steps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        xt = self.diffusion.q_sample(x0, idx, noise)
        net = IdentityResidual(self.net) if self.cfg.identity_residual else self.net
        out = net(
            xt, idx, batch["identity"], self.motion_input(batch["motion"]), self.encode_audio(batch["audio_features"])
        )
        pred, nu = out.chunk(2, dim=1)
        # the mean output is detached inside L_vlb so that it trains only the variance (improved DDPM, official)
        vlb = vlb_terms(self.diffusion, torch.cat([pred.detach(), nu], dim=1), x0, xt, idx).mean()
        target = noise if self.cfg.prediction == "eps" else x0
        simple = F.mse_loss(pred, target)
        mouth = batch["mouth"] if self.cfg.lip_landmarks == "target" else batch["mouth_identity"]
        lip = lip_loss(target, pred, mouth_boxes(mouth, x0.shape[-1], self.cfg.lip_margin))
        loss = simple + self.cfg.vlb_weight * vlb + self.cfg.lip_weight * lip
        return {"simple": simple, "vlb": vlb, "lip": lip, "loss": loss}

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        log_losses(self, "train", out, batch["x0"].shape[0])
        return out["loss"]

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        log_losses(self, "val", self.losses(batch), batch["x0"].shape[0])

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema_net is not None:
            self.update_ema()

    @torch.no_grad()
    def update_ema(self) -> None:
        assert self.ema_net is not None and self.cfg.ema_decay is not None  # __init__ builds ema_net from ema_decay
        d = float(self.cfg.ema_decay)
        for e, p in zip(self.ema_net.parameters(), self.net.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e_buf, buf in zip(self.ema_net.buffers(), self.net.buffers()):
            e_buf.copy_(buf)

    def lr_step_size(self, total_steps: int | None = None) -> int:
        """Optimiser steps between StepLR decays: `lr_step_every`, or `total_steps` (default: the trainer's
        max_steps) // `lr_decays`, so the run decays `lr_decays` times as the official n_epochs // 18 does."""
        if self.cfg.lr_step_every:
            return int(self.cfg.lr_step_every)
        if total_steps is None:
            trainer = self._trainer
            total = getattr(trainer, "max_steps", -1) if trainer is not None else -1
            if total is None or total < 0:
                total = getattr(trainer, "estimated_stepping_batches", float("inf")) if trainer is not None else -1
            if not (0 < total < float("inf")):
                raise ValueError(
                    f"lr_decays={self.cfg.lr_decays} spreads the LR decays over the trainer's max_steps, which is not "
                    "set here: train in a Trainer with max_steps, or set lr_step_every"
                )
            total_steps = int(total)
        assert self.cfg.lr_decays is not None  # __init__ checks that lr_step_every or lr_decays is set
        return max(1, int(total_steps) // int(self.cfg.lr_decays))

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        params = list(self.net.parameters())
        if self.audio_encoder is not None:  # only a trainable front end is optimised
            params += list(self.audio_encoder.parameters())
        opt = torch.optim.Adam(params, lr=self.cfg.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=self.lr_step_size(), gamma=self.cfg.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ----- checkpoints -----------------------------------------------------------------------------------------
    @classmethod
    def checkpoint_params(cls, path: str | os.PathLike, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The config overrides checkpoint `path` implies (models.checkpoints.checkpoint_params calls this).

        Always `grayscale_motion` (from input_blocks.0.0.weight's input channels, 3 + n_motion_frames * c + 3;
        n_motion_frames from the file when it says, else `params`, else 2), `model_channels`, `audio_frontend`
        (`sda` for a file without audio-encoder weights, i.e. an official one), `audio_dim` and
        `n_audio_motion_embs`; plus every architecture field the file describes (official hyper_parameters,
        TorchScript attributes, our saved config). Layouts: models/diffused_heads/checkpoints.py.
        """
        params = dict(params or {})
        n_motion = params.get("n_motion_frames") or DiffusedHeadsConfig.n_motion_frames
        return cls._implied(read_dh_checkpoint(path), int(n_motion))

    @staticmethod
    def _implied(ck: DiffusedHeadsCheckpoint, n_motion_frames: int) -> dict[str, Any]:
        known = {f.name for f in dataclasses.fields(DiffusedHeadsConfig)}
        return {k: v for k, v in implied_params(ck, n_motion_frames).items() if k in known}

    def load_checkpoint(self, path: str | os.PathLike) -> dict[str, Any]:
        """Load any Diffused Heads checkpoint into this module (models.checkpoints.load_module_checkpoint calls
        this); returns {"format", "loaded", "audio_frontend"}.

        Official files (the Lightning .ckpt, crema_script.pt, a bare UNet state dict) fill the UNet (and the EMA
        copy); they carry no audio encoder, so the module must use the frozen `sda` front end they were trained
        with. Our own files (model.pt, our Lightning checkpoints) restore the UNet, the mel encoder and the EMA;
        without an EMA in the module, the file's EMA weights become the UNet (they are what it generated with).
        """
        ck = read_dh_checkpoint(path)
        if ck.layout == "module":
            loaded = self._load_own(ck)
        else:
            unet = ck.unet()
            self._check(ck, self.net, unet, "UNet")
            if self.audio_encoder is not None:
                raise CheckpointError(
                    f"checkpoint {ck.source}: an official Diffused Heads UNet ({ck.layout}), trained on the frozen SDA "
                    f"encoder's embeddings, but this model uses the trainable {self.cfg.audio_frontend!r} front end, "
                    "which would drive it untrained: build it with audio_frontend=sda (models.checkpoints."
                    "checkpoint_params gives every param the file implies) after "
                    "`bench weights import audio_encoder.pt --as sda_audio_encoder`"
                )
            self.net.load_state_dict(unet)
            loaded = ["net"]
            if self.ema_net is not None:
                self.ema_net.load_state_dict(unet)
                loaded.append("ema_net (a copy of net)")
        return {"format": ck.layout, "loaded": loaded, "audio_frontend": self.audio_frontend.info()}

    def _load_own(self, ck: DiffusedHeadsCheckpoint) -> list[str]:
        parts = ("net.", "audio_encoder.", "ema_net.")
        others = [k for k in ck.state_dict if not k.startswith(parts)]
        if others:
            raise CheckpointError(
                f"checkpoint {ck.source}: {len(others)} entries of no DiffusedHeadsModule part (first: {others[:3]})"
            )
        net_sd, enc_sd, ema_sd = (ck.part(p) for p in parts)
        self._check(ck, self.net, net_sd, "UNet")
        if self.audio_encoder is not None and not enc_sd:
            raise CheckpointError(
                f"checkpoint {ck.source}: no audio-encoder weights (trained with a frozen front end), but this model "
                f"trains the {self.cfg.audio_frontend!r} front end: build it with the params checkpoint_params gives"
            )
        if self.audio_encoder is None and enc_sd:
            raise CheckpointError(
                f"checkpoint {ck.source}: holds mel audio-encoder weights, but this model uses the frozen "
                f"{self.cfg.audio_frontend!r} front end: build it with audio_frontend=mel"
            )
        if enc_sd:
            assert self.audio_encoder is not None  # raised above otherwise
            self._check(ck, self.audio_encoder, enc_sd, "audio encoder")
        if ema_sd:
            self._check(ck, self.net, ema_sd, "EMA UNet")
        loaded = ["net"]
        self.net.load_state_dict(net_sd)
        if enc_sd:
            assert self.audio_encoder is not None
            self.audio_encoder.load_state_dict(enc_sd)
            loaded.append("audio_encoder")
        if self.ema_net is not None:
            self.ema_net.load_state_dict(ema_sd or net_sd)
            loaded.append("ema_net" if ema_sd else "ema_net (a copy of net)")
        elif ema_sd:
            self.net.load_state_dict(ema_sd)
            loaded[0] = "net (from ema_net: the weights the trained model generated with)"
        return loaded

    def _check(self, ck: DiffusedHeadsCheckpoint, net: torch.nn.Module, sd: Mapping, what: str) -> None:
        try:
            check_state_dict(net, sd, source=f"{ck.source} ({what})")
        except CheckpointError as err:
            raise CheckpointError(f"{err}{self._fit_hint(ck)}") from None

    def _fit_hint(self, ck: DiffusedHeadsCheckpoint) -> str:
        """Which params (and preset) the file would fit: sentences appended to a mismatch error."""
        try:
            implied = self._implied(ck, self.cfg.n_motion_frames)
        except CheckpointError as err:
            return f" ({err})"
        have = dataclasses.asdict(self.cfg)
        diff = {k: v for k, v in implied.items() if _plain(have.get(k)) != _plain(v)}
        unet = ck.unet()
        fits = []
        for preset in DiffusedHeadsConfig.preset_names():
            try:
                with torch.device("meta"):
                    net = DiffusedHeadsUNet(DiffusedHeadsConfig.preset(preset, **implied).unet_config())
                check_state_dict(net, unet)
            except (CheckpointError, ValueError):
                continue
            fits.append(preset)
        text = ""
        if diff:
            mine = {k: have.get(k) for k in diff}
            text += f" The file implies params {diff} (this model has {mine}): build the model with them."
        if fits:
            return text + f" With the params it implies it fits the {' / '.join(map(repr, fits))} preset."
        presets = ", ".join(DiffusedHeadsConfig.preset_names())
        return text + f" It fits no preset ({presets}) with the params it implies: its widths differ."

    # ----- backends ----------------------------------------------------------------------------------------------
    def use_torchscript(self, path: str) -> None:
        """Sample with a TorchScript UNet (the official `crema_script.pt` layout: called as
        `unet(x_t, t, x_cond, motion_frames=..., audio_emb=...)`) instead of `self.net`."""
        try:
            self.backend = torch.jit.load(str(path), map_location=self.device)
        except Exception as err:
            raise ValueError(f"{path}: not a loadable TorchScript archive ({err})") from err

    def denoiser(self) -> torch.nn.Module:
        """The network generation calls: the TorchScript backend if set, else the (EMA) UNet; wrapped in
        `IdentityResidual` when the config reads the output that way (a property of the model, not the backend)."""
        net = self.backend if self.backend is not None else self.ema_net if self.ema_net is not None else self.net
        return IdentityResidual(net) if self.cfg.identity_residual else net

    # ----- generation --------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _generate(
        self,
        identity: np.ndarray,
        audio: np.ndarray,
        *,
        pose_prior: np.ndarray | None = None,
        seed: int | Sequence[int] = 0,
        audio_emb: np.ndarray | None = None,
    ) -> np.ndarray:
        """uint8 [B,H,W,3] identity frames, float32 [B,N] 16 kHz audio -> uint8 [B,T,H,W,3], T = N // 640.

        Deterministic given `seed`: clip b draws its noise from a generator seeded `seed + b` (or `seed[b]` for a
        sequence of per-clip seeds), so generating clips together gives what generating clip b alone with its seed
        gives (up to float rounding of batched convolutions).
        `pose_prior` is not used (Diffused Heads needs only the identity frame).
        `audio_emb` (float32 [B,T,audio_dim]) replaces the built-in audio encoder with external embeddings.
        """
        b, h, w = identity.shape[:3]
        n_frames = frames_for_audio(audio.shape[1])
        if audio_emb is not None and np.shape(audio_emb) != (b, n_frames, self.cfg.audio_dim):
            raise ValueError(
                f"audio_emb must be [B,T,D] = {(b, n_frames, self.cfg.audio_dim)}, got {np.shape(audio_emb)}"
            )
        if n_frames == 0:
            return np.zeros((b, 0, h, w, 3), np.uint8)
        was_training = self.training
        self.eval()
        try:
            s = self.cfg.image_size
            ident = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in identity])
            ident_t = to_model(ident).to(self.device)
            if audio_emb is None:
                frontend = self.audio_frontend.to(self.device)
                emb = frontend.embed_batch(audio).to(self.device)
            else:
                emb = torch.as_tensor(np.asarray(audio_emb, np.float32), device=self.device)
            net = self.denoiser()
            # one generator per clip: x_T for every frame is drawn first, then the chain noise (ancestral)
            gens = [torch.Generator(device=self.device).manual_seed(s) for s in clip_seeds(seed, b)]
            out = []
            step = max(1, int(self.cfg.generate_batch_size))
            for i in range(0, b, step):
                frames = autoregressive_sample(
                    net,
                    self.diffusion,
                    ident_t[i : i + step],
                    emb[i : i + step],
                    n_motion_frames=self.cfg.n_motion_frames,
                    n_audio_motion_embs=self.cfg.n_audio_motion_embs,
                    grayscale_motion=self.cfg.grayscale_motion,
                    sampler=self.cfg.sampler_config(),
                    generator=gens[i : i + step],
                    segment_len=self.cfg.segment_len,
                    motion_mask=self.cfg.motion_mask,
                )
                if (h, w) != (s, s):
                    flat = F.interpolate(frames.flatten(0, 1), size=(h, w), mode="bicubic", align_corners=False)
                    frames = flat.reshape(*frames.shape[:2], 3, h, w)
                out.append(from_model(frames))
        finally:
            self.train(was_training)
        return np.concatenate(out)
