"""Diffused Heads networks: the conditional UNet (the audio front ends are in models/common/audio_frontends.py).

The UNet follows the official code (MStypulkowski/diffused-heads, `train` branch @2838e57, models/unet.py and
models/blocks.py; facts in docs/diffused_heads.md), a simplified guided-diffusion UNet:

- input: channel concat [x_t (3), motion frames (n_motion_frames x 1 grayscale or x 3 RGB), identity frame (3)];
- time embedding: sinusoidal with frequencies exp(-ln(1e4) * k / (2C)), k < C/2 (the official divisor is 2C, not
  guided-diffusion's C/2), [cos, sin] order, then Linear(C, 4C)-SiLU-Linear(4C, 4C);
- audio embedding: the 2m+1 per-frame audio vectors flattened, Linear-SiLU-Linear to 4C;
- CondResBlock "double_pre_gn": h = GN(h)(1 + t_scale) + t_shift, then h = h(1 + a_scale) + a_shift, SiLU, dropout,
  zero-initialised conv; up/down blocks resample inside the block (nearest x2 / 2x2 average pooling);
- attention (legacy QKV head split) at the levels whose resolution is in `attention_resolutions`, and in the middle.

With the `paper` config the state dict equals tests/data_files/diffused_heads_UNet_state_dict.tsv (grayscale motion, 8
input channels) or ..._rgbmotion_state_dict.tsv (RGB motion, 12 input channels; the released CREMA checkpoint).
Differences from the official code, none of which changes a key or a shape at the paper config: `norm_groups` (32
officially) and `audio_dim` (officially equal to model_channels) are settings so that a CPU-sized network can exist;
only the "frame" identity conditioning and "double_pre_gn" audio conditioning of the released configs are built.
`forward` keeps the official signature `unet(x_t, timesteps, x_cond, motion_frames, audio_emb)`, so a TorchScript
archive of the official UNet is a drop-in backend, and this UNet scripts with `torch.jit.script`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# the per-frame mel encoder is an audio front end (models/common/audio_frontends.py); importable from here as before
from models.common.audio_frontends import MEL_COLUMNS, AudioEncoderConfig, MelFrameEncoder  # noqa: F401


@dataclass
class UNetConfig:
    """UNet hyperparameters; defaults are the official train config (configs/config.yaml) = the `paper` preset."""

    image_size: int = 128
    in_channels: int = 3
    model_channels: int = 256
    out_channels: int = 6  # epsilon (3) + variance interpolation nu (3)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32,)  # feature-map sizes with attention (image_size // ds)
    dropout: float = 0.1
    channel_mult: tuple[int, ...] = (1, 2, 3)
    num_heads: int = 4
    num_head_channels: int = 64  # -1: use num_heads
    resblock_updown: bool = True
    n_motion_frames: int = 2
    grayscale_motion: bool = True
    n_audio_motion_embs: int = 2  # audio vectors on each side of the frame (window 2m + 1)
    audio_dim: int | None = None  # per-frame audio embedding size; None = model_channels (official)
    norm_groups: int = 32

    @property
    def motion_channels(self) -> int:
        return 1 if self.grayscale_motion else 3

    @property
    def input_channels(self) -> int:
        return self.in_channels + self.motion_channels * self.n_motion_frames + self.in_channels

    @property
    def audio_channels(self) -> int:
        return self.audio_dim if self.audio_dim is not None else self.model_channels


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.detach().zero_()
    return module


class TimestepEmbedding(nn.Module):
    """Sinusoidal timestep features -> MLP (official `TimestepEmbedding`, keys `fc.0`, `fc.2`)."""

    def __init__(self, channels: int, max_period: float = 1e4) -> None:
        super().__init__()
        self.channels = channels
        self.max_period = max_period
        self.fc = nn.Sequential(nn.Linear(channels, 4 * channels), nn.SiLU(), nn.Linear(4 * channels, 4 * channels))

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        k = torch.arange(self.channels // 2, device=timesteps.device, dtype=torch.float32)
        # the official divisor is 2C (blocks.py), not guided-diffusion's C/2
        freqs = torch.exp(-math.log(self.max_period) * k / (self.channels * 2))
        args = timesteps.float()[:, None] * freqs[None]
        return self.fc(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class CondResBlock(nn.Module):
    """Residual block with time FiLM after the output GroupNorm, then audio FiLM ("double_pre_gn")."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        up: bool = False,
        down: bool = False,
        groups: int = 32,
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.up = up
        self.down = down
        self.t_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.audio_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(groups, out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return x

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, a_emb: torch.Tensor) -> torch.Tensor:
        # the resampling sits between the norm/activation and the conv, as in guided-diffusion's updown blocks
        h = self.in_layers[1](self.in_layers[0](x))
        h = self._resample(h)
        x = self._resample(x)
        h = self.in_layers[2](h)
        t_scale, t_shift = self.t_emb_layers(t_emb)[:, :, None, None].chunk(2, dim=1)
        h = self.out_layers[0](h) * (1 + t_scale) + t_shift
        a_scale, a_shift = self.audio_emb_layers(a_emb)[:, :, None, None].chunk(2, dim=1)
        h = h * (1 + a_scale) + a_shift
        h = self.out_layers[3](self.out_layers[2](self.out_layers[1](h)))
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over positions with the "legacy" QKV head split of guided-diffusion."""

    def __init__(self, channels: int, num_heads: int, num_head_channels: int, groups: int = 32) -> None:
        super().__init__()
        if num_head_channels > 0:
            if channels % num_head_channels:
                raise ValueError(
                    f"attention channels {channels} not divisible by num_head_channels {num_head_channels}"
                )
            num_heads = channels // num_head_channels
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, a_emb: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        x = x.reshape(b, c, hh * ww)
        qkv = self.qkv(self.norm(x))
        length = qkv.shape[-1]
        ch = c // self.num_heads
        q, k, v = qkv.reshape(b * self.num_heads, 3 * ch, length).split(ch, dim=1)
        scale = 1.0 / math.sqrt(math.sqrt(ch))
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = torch.softmax(weight.float(), dim=-1).to(weight.dtype)
        a = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, length)
        return (x + self.proj_out(a)).reshape(b, c, hh, ww)


class InputConv(nn.Conv2d):
    """The first 3x3 conv; takes (and ignores) the embeddings like every other stage layer."""

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, a_emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._conv_forward(x, self.weight, self.bias)


class CondSequential(nn.Sequential):
    """One UNet stage: an optional input conv, a CondResBlock, optional attention, optional up-block.

    The submodule indices reproduce the official `CondSequential` keys (`input_blocks.N.0`, `.1`, `.2`).
    """

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__(*layers)

    def forward(self, h: torch.Tensor, t_emb: torch.Tensor, a_emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # every stage layer takes (h, t_emb, a_emb), so the loop scripts without type refinement
        for layer in self:
            h = layer(h, t_emb, a_emb)
        return h


class DiffusedHeadsUNet(nn.Module):
    """The Diffused Heads denoiser: (x_t, t, identity, motion frames, audio window) -> [eps, nu] (B, 6, H, W).

    x_t, x_cond: (B, 3, S, S) in [-1, 1]; motion_frames: (B, n_motion * motion_channels, S, S); audio_emb:
    (B, 2m + 1, audio_dim); timesteps: (B,) original (un-respaced) step indices.
    """

    def __init__(self, cfg: UNetConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or UNetConfig()
        self.cfg = cfg
        self.n_motion_frames = cfg.n_motion_frames
        self.n_audio_motion_embs = cfg.n_audio_motion_embs
        self.motion_channels = cfg.motion_channels
        mc, g = cfg.model_channels, cfg.norm_groups
        emb = 4 * mc
        attn_ds = [cfg.image_size // r for r in cfg.attention_resolutions]
        self.time_embed = TimestepEmbedding(mc)
        self.audio_embed = nn.Sequential(
            nn.Linear(cfg.audio_channels * (2 * cfg.n_audio_motion_embs + 1), emb), nn.SiLU(), nn.Linear(emb, emb)
        )

        def res(cin: int, cout: int, up: bool = False, down: bool = False) -> CondResBlock:
            return CondResBlock(cin, emb, cfg.dropout, cout, up=up, down=down, groups=g)

        def attn(c: int) -> AttentionBlock:
            return AttentionBlock(c, cfg.num_heads, cfg.num_head_channels, groups=g)

        ch = input_ch = int(cfg.channel_mult[0] * mc)
        self.input_blocks = nn.ModuleList([CondSequential([InputConv(cfg.input_channels, ch, 3, padding=1)])])
        chans = [ch]
        ds = 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, int(mult * mc))]
                ch = int(mult * mc)
                if ds in attn_ds:
                    layers.append(attn(ch))
                self.input_blocks.append(CondSequential(layers))
                chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                if not cfg.resblock_updown:
                    raise ValueError("only resblock_updown=True (the released configs) is built")
                self.input_blocks.append(CondSequential([res(ch, ch, down=True)]))
                chans.append(ch)
                ds *= 2
        self.middle_block = CondSequential([res(ch, ch), attn(ch), res(ch, ch)])
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + chans.pop(), int(mc * mult))]
                ch = int(mc * mult)
                if ds in attn_ds:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, up=True))
                    ds //= 2
                self.output_blocks.append(CondSequential(layers))
        self.out = nn.Sequential(
            nn.GroupNorm(g, ch), nn.SiLU(), zero_module(nn.Conv2d(input_ch, cfg.out_channels, 3, padding=1))
        )

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        x_cond: torch.Tensor,
        motion_frames: torch.Tensor,
        audio_emb: torch.Tensor,
    ) -> torch.Tensor:
        t_emb = self.time_embed(timesteps)
        a_emb = self.audio_embed(audio_emb.reshape(audio_emb.shape[0], -1))
        h = torch.cat([x, motion_frames, x_cond], dim=1)
        hs: list[torch.Tensor] = []
        for block in self.input_blocks:
            h = block(h, t_emb, a_emb)
            hs.append(h)
        h = self.middle_block(h, t_emb, a_emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), t_emb, a_emb)
        return self.out(h)


class IdentityResidual(nn.Module):
    """`net`'s x0 output read as a change of the identity frame: [x0, nu] = net(...) + [x_cond, 0].

    NOT in the paper or the official code (which predicts eps from scratch); an option of the CPU `tiny` preset,
    where a few hundred optimiser steps are all there is: with the zero-initialised output conv the untrained model
    already returns the identity frame, so training spends its steps on head motion and the mouth. Only meaningful
    with x0 prediction. Holds no parameters: state dicts are the wrapped UNet's.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        x_cond: torch.Tensor,
        motion_frames: torch.Tensor,
        audio_emb: torch.Tensor,
    ) -> torch.Tensor:
        out = self.net(x, timesteps, x_cond, motion_frames, audio_emb)
        return torch.cat([out[:, :3] + x_cond, out[:, 3:]], dim=1)
