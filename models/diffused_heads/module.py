"""LightningModule for Diffused Heads (Stypulkowski et al., WACV 2024): training and frame-by-frame generation.

Training (official lightning_modules/model.py, configs/config.yaml; reference/official_repos.md 4.3-4.5): a random
step t of the T = 1000 cosine chain, loss L_simple + 1e-4 L_vlb + 0.2 L_lip, Adam 5e-5 with StepLR gamma 0.8, an
optional EMA of the UNet weights (used for generation when on), bf16 on GPU and DDP through the trainer settings.
The per-frame audio encoder (`nets.MelFrameEncoder`, 256-d at the paper preset) is trained jointly with the UNet;
`generate(..., audio_emb=...)` takes external per-frame embeddings (SDA, Whisper, ...) instead.

Generation: the identity frame is the first frame, every x_T is drawn up front from the seed, frames are sampled
one after the other with the last `n_motion_frames` generated frames as motion input, batched across clips.

Presets. `paper` is the official model: 128x128, official widths, eps prediction, lip weight 0.2, 100 respaced
ancestral steps. `tiny` is a CPU-minutes model that is NOT the paper's, built to learn lip-sync in a few hundred
optimiser steps on a shared 2-core CPU; what it changes, and why:
- the UNet runs at 32x32 (frames resized down with INTER_AREA, outputs resized back up bicubically), widths
  16-32-64, one res block per level (training cost);
- x0 prediction (improved-diffusion START_X) instead of eps, read as a change of the identity frame
  (`identity_residual`): the untrained model already returns the identity frame, so no step is spent learning to
  draw a face, and few-step DDIM gives clean frames (eps prediction after ~200 steps gave noise-dominated faces);
- motion frames with their lower half hidden (`motion_mask: lower_half`): with the mouth visible, copying the
  previous frame's mouth is the best predictor early on and the short run never learns audio;
- lip-loss weight 1.0 (0.2 officially), Adam 1e-3 with StepLR every 300 steps, batch 16;
- 5 DDIM steps at generation, motion frames re-seeded with the identity frame every 10 frames.
Every one of these is a config field, so each can be switched back to the paper's value on its own.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from data.clip import frames_for_audio
from models.common.config import from_preset, to_config
from models.common.inputs import generation_inputs
from models.common.steps import log_losses
from models.diffused_heads.nets import (
    AudioEncoderConfig,
    DiffusedHeadsUNet,
    IdentityResidual,
    MelFrameEncoder,
    UNetConfig,
)
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
from models.diffused_heads.windows import frame_mel_windows, from_model, to_model

WINDOW_KIND = "diffused_heads"  # data.windows.WINDOWS entry: windows.DiffusedHeadsWindows


@dataclass
class DiffusedHeadsConfig:
    """Hyperparameters; defaults are the `paper` preset (official configs/config.yaml)."""

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
    audio_encoder_width: int = 128
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
    lr_step_every: int = 10_000  # optimizer steps between StepLR decays (official: every n_epochs // 18 epochs)
    ema_decay: float | None = None  # EMA of the UNet weights; None = off
    batch_size: int = 10  # per device, official
    sampler: str = "ancestral"  # process.SAMPLERS: ancestral (official) | ddim
    sample_steps: int = 100  # respaced chain length at generation (official main: 100; gen_test: 200)
    ddim_eta: float = 0.0
    segment_len: int | None = None  # re-seed a motion frame with the identity frame every N frames (None = off)
    generate_batch_size: int = 16  # clips sampled together in generate()

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DiffusedHeadsConfig:
        return from_preset(cls, DIFFUSED_HEADS_PRESETS, name, **overrides)

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


DIFFUSED_HEADS_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # CPU minutes, NOT the paper's model (module docstring; configs/models/diffused_heads.yaml notes say the same):
    # 32x32 inside, small widths, x0 prediction added to the identity frame, motion frames without their lower half,
    # lip-loss weight 1.0, Adam 1e-3 with a faster LR decay, 5 DDIM steps
    "tiny": {
        "image_size": 32,
        "model_channels": 16,
        "channel_mult": (1, 2, 4),  # 16 channels at 32x32 where convolutions cost most, 64 at 8x8
        "num_res_blocks": 1,
        "attention_resolutions": (8,),
        "num_heads": 1,
        "num_head_channels": -1,
        "dropout": 0.0,
        "norm_groups": 8,
        "audio_dim": 64,
        "audio_encoder_width": 64,
        "prediction": "x0",
        "identity_residual": True,
        "motion_mask": "lower_half",
        "lip_weight": 1.0,  # with the motion frames' mouth hidden, the mouth box is where audio must be learned
        "lip_margin": 2,
        "lr": 1e-3,
        "lr_step_every": 300,
        "batch_size": 16,
        "sampler": "ddim",
        "sample_steps": 5,
        "segment_len": 10,
        "generate_batch_size": 16,
    },
}


class DiffusedHeadsModule(L.LightningModule):
    """Diffused Heads: `self.net` is the UNet (official key names), `self.audio_encoder` the per-frame encoder.

    Batches are `windows.DiffusedHeadsWindows` items (window_kind "diffused_heads"). Logs train/simple,
    train/vlb, train/lip, train/loss and the same under val/.
    """

    window_kind = WINDOW_KIND
    trainable = True
    config_class = DiffusedHeadsConfig

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
        self.cfg = cfg
        self.save_hyperparameters({"cfg": dataclasses.asdict(cfg)})
        self.net = DiffusedHeadsUNet(cfg.unet_config())
        self.audio_encoder = MelFrameEncoder(AudioEncoderConfig(out_dim=cfg.audio_dim, width=cfg.audio_encoder_width))
        self.ema_net = None
        if cfg.ema_decay is not None:
            self.ema_net = copy.deepcopy(self.net).requires_grad_(False)
        self.diffusion = GaussianDiffusion.cosine(cfg.n_timesteps, cfg.prediction)
        self.backend: torch.nn.Module | None = None  # a TorchScript UNet used instead of self.net (use_torchscript)

    def window_kwargs(self) -> dict[str, Any]:
        return {
            "image_size": self.cfg.image_size,
            "n_motion_frames": self.cfg.n_motion_frames,
            "n_audio_motion_embs": self.cfg.n_audio_motion_embs,
            "identity_frame": self.cfg.identity_frame,
        }

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

    def encode_audio(self, mels: torch.Tensor) -> torch.Tensor:
        """(..., 80, 16) per-frame log-mel windows -> (..., audio_dim)."""
        lead = mels.shape[:-2]
        return self.audio_encoder(mels.reshape(-1, *mels.shape[-2:])).reshape(*lead, -1)

    # ----- training --------------------------------------------------------------------------------------------
    def losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x0 = batch["x0"]
        b = x0.shape[0]
        # official forward: no respacing in training, t uniform over the T steps
        idx = torch.randint(self.diffusion.num_steps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        xt = self.diffusion.q_sample(x0, idx, noise)
        net = IdentityResidual(self.net) if self.cfg.identity_residual else self.net
        out = net(xt, idx, batch["identity"], self.motion_input(batch["motion"]), self.encode_audio(batch["mels"]))
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
        d = float(self.cfg.ema_decay)
        for e, p in zip(self.ema_net.parameters(), self.net.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, p in zip(self.ema_net.buffers(), self.net.buffers()):
            e.copy_(p)

    def configure_optimizers(self) -> dict[str, Any]:
        params = list(self.net.parameters()) + list(self.audio_encoder.parameters())
        opt = torch.optim.Adam(params, lr=self.cfg.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=self.cfg.lr_step_every, gamma=self.cfg.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

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
    def generate(
        self,
        identity: np.ndarray,
        audio: np.ndarray,
        *,
        pose_prior: np.ndarray | None = None,
        seed: int = 0,
        audio_emb: np.ndarray | None = None,
    ) -> np.ndarray:
        """uint8 [B,H,W,3] identity frames, float32 [B,N] 16 kHz audio -> uint8 [B,T,H,W,3], T = N // 640.

        Deterministic given `seed`: clip b draws its noise from a generator seeded `seed + b`, so generating clips
        together gives what generating clip b alone with `seed + b` gives (up to float rounding of batched
        convolutions), and the runner's per-clip seeds (run.seed + i) stay meaningful when clips are batched.
        `pose_prior` is not used (Diffused Heads needs only the identity frame).
        `audio_emb` (float32 [B,T,audio_dim]) replaces the built-in audio encoder with external embeddings.
        """
        identity, audio = generation_inputs(identity, audio)
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
                mels = torch.from_numpy(np.stack([frame_mel_windows(a, n_frames) for a in audio])).to(self.device)
                emb = self.encode_audio(mels)
            else:
                emb = torch.as_tensor(np.asarray(audio_emb, np.float32), device=self.device)
            net = self.denoiser()
            # one generator per clip: x_T for every frame is drawn first, then the chain noise (ancestral)
            gens = [torch.Generator(device=self.device).manual_seed(int(seed) + j) for j in range(b)]
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
