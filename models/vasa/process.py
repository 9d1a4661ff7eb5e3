"""The VASA-style diffusion process: schedule, training targets, multi-condition CFG and sliding-window sampling.

VASA-1 section 3.2: DDPM forward process, the network predicts X_0 and is trained with |X_0 - H(X_t, t, C)|^2;
at inference, classifier-free guidance over several conditions,

    X_0_hat = (1 + sum_c lambda_c) H(X_t, t, C) - sum_c lambda_c H(X_t, t, C|c=null),

with lambda_A = 0.5 and lambda_g = 1.0 and 50 sampling steps by default. The paper does not give its noise
schedule or sampler; this uses the cosine schedule (Nichol & Dhariwal 2021) with T = 1000 and deterministic DDIM
steps (eta = 0) from the predicted X_0, so a seed fixes the result. Schedule, spacing and update are the shared
ones of models/common/schedulers.py, with VASA's own choices there named: alpha_bar kept in float32 and the
sampling steps spaced by a float32 linspace (docs/diffusion.md).

Windows: the clip is cut into consecutive windows of W frames; each window is conditioned on the last K frames
of motion and audio of the previous one (none for the first window: that condition is null, as in training with
its 0.5 dropout). The last window's audio past the clip's end is null, as in training's random tail truncation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from models.common import schedulers
from models.vasa.motion_dit import CONDITIONS, MotionConditions, MotionDiT


class CosineSchedule(nn.Module):
    """The shared cosine schedule (`schedulers.CosineScheduler`) as a float32 buffer that follows the module's
    device: alpha_bar(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2), betas clipped at 0.999 (improved DDPM)."""

    alpha_bar: torch.Tensor  # buffer [T]

    def __init__(self, num_steps: int = 1000, s: float = schedulers.COSINE_OFFSET) -> None:
        super().__init__()
        # VASA's named departures from Diffused Heads' schedule (schedulers module docstring)
        self.scheduler = schedulers.CosineScheduler(num_steps, "linspace_float32", "float32", offset=s)
        self.num_steps = num_steps
        self.register_buffer("alpha_bar", self.scheduler.alpha_bar_tensor(), persistent=False)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar[t].view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def ddim_timesteps(self, n: int) -> list[int]:
        """n descending timesteps spread over [0, T-1] (the first is T-1, the last 0)."""
        if not 1 <= n <= self.num_steps:
            raise ValueError(f"sampling steps must be in [1, {self.num_steps}], got {n}")
        return self.scheduler.timesteps(n)[::-1]

    def ddim_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int | None) -> torch.Tensor:
        """x_{t_prev} from x_t and the predicted x0 (eta = 0); t_prev None returns x0."""
        if t_prev is None:
            return x0
        eps = schedulers.predict_eps(x_t, x0, self.alpha_bar[t])
        return schedulers.ddim_step(x0, eps, self.alpha_bar[t_prev])


def guided_x0(
    net: MotionDiT, x_t: torch.Tensor, t: torch.Tensor, cond: MotionConditions, scales: Mapping[str, float]
) -> torch.Tensor:
    """Multi-condition CFG (module docstring) in one batched forward pass: 1 + (number of non-zero scales)."""
    names = [n for n, s in scales.items() if s != 0.0]
    unknown = sorted(set(names) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"CFG scales for unknown conditions {unknown}; valid: {', '.join(CONDITIONS)}")
    if not names:
        return net(x_t, t, cond)
    n = len(names) + 1
    out = net(x_t.repeat(n, 1, 1), t.repeat(n), cond.repeat_with_dropped(names)).chunk(n)
    total = sum(scales[c] for c in names)
    return (1.0 + total) * out[0] - sum(scales[c] * o for c, o in zip(names, out[1:]))


@torch.no_grad()
def sample_window(
    net: MotionDiT,
    schedule: CosineSchedule,
    cond: MotionConditions,
    steps: int,
    scales: Mapping[str, float],
    generator: torch.Generator | Sequence[torch.Generator],
) -> torch.Tensor:
    """One window [B, W, M] of (normalised) motion latents by DDIM with CFG. `generator`: one for the batch, or
    one per sample (what sample b draws then does not depend on the rest of the batch)."""
    b = cond.audio.shape[0]
    shape = (net.window, net.motion_dim)
    if isinstance(generator, torch.Generator):
        x = torch.randn(b, *shape, generator=generator)
    else:
        x = torch.stack([torch.randn(*shape, generator=g) for g in generator])
    x = x.to(cond.audio.device)
    ts = schedule.ddim_timesteps(steps)
    for i, t in enumerate(ts):
        x0 = guided_x0(net, x, torch.full((b,), t, device=x.device, dtype=torch.long), cond, scales)
        x = schedule.ddim_step(x, x0, t, ts[i + 1] if i + 1 < len(ts) else None)
    return x


def iter_motion_windows(
    net: MotionDiT,
    schedule: CosineSchedule,
    audio: torch.Tensor,
    gaze: torch.Tensor,
    distance: torch.Tensor,
    emotion: torch.Tensor | None,
    *,
    steps: int = 50,
    scales: Mapping[str, float],
    generator: torch.Generator | Sequence[torch.Generator],
    first_window: int | None = None,
) -> Iterator[torch.Tensor]:
    """Streaming: yield motion [B, n, M] window by window (n = W, fewer for the last) for audio [B, T, A].

    gaze [B,2], distance [B,1], emotion [B,E] or None (the paper's default "empty emotion offset").
    `first_window` F (context K <= F <= W; None: W) makes the first window F frames: it is sampled as a W-frame
    window whose audio is valid for its first F frames only (the truncated windows of training), so the first
    frames need F frames of audio instead of W; the windows after it are W frames, starting at frame F.
    """
    b, total, a_dim = audio.shape
    w, k, m = net.window, net.context, net.motion_dim
    first = w if first_window is None else int(first_window)
    if not k <= first <= w:
        raise ValueError(f"first window {first} frames: it must lie between the context ({k}) and the window ({w})")
    dev = audio.device
    ones = torch.ones(b, dtype=torch.bool, device=dev)
    prev_motion = torch.zeros(b, k, m, device=dev)
    prev_audio = torch.zeros(b, k, a_dim, device=dev)
    emo = emotion if emotion is not None else torch.zeros(b, net.emotion_dim, device=dev)
    for start in [0, *range(first, total, w)] if total > 0 else []:
        n = min(first if start == 0 else w, total - start)
        chunk = torch.zeros(b, w, a_dim, device=dev)
        chunk[:, :n] = audio[:, start : start + n]
        valid = torch.zeros(b, w, dtype=torch.bool, device=dev)
        valid[:, :n] = True
        cond = MotionConditions(
            audio=chunk,
            audio_valid=valid,
            prev_motion=prev_motion,
            prev_audio=prev_audio,
            gaze=gaze,
            distance=distance,
            emotion=emo,
            keep={
                "audio": ones,
                "prev": ones if start > 0 else ~ones,
                "gaze": ones,
                "distance": ones,
                "emotion": ones if emotion is not None else ~ones,
            },
        )
        x = sample_window(net, schedule, cond, steps, scales, generator)[:, :n]
        yield x
        if n >= k:
            prev_motion = x[:, n - k : n]
            prev_audio = audio[:, start + n - k : start + n]
        else:  # a short last window: nothing follows it
            break


def sampling_controls(
    b: int,
    gaze: Sequence[float] | None,
    distance: float | None,
    emotion: Sequence[float] | None,
    emotion_dim: int,
    norm: Callable[[str, torch.Tensor], torch.Tensor],
    device: torch.device | str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The controls a batch of b clips is sampled under: gaze [b, 2] and distance [b, 1] normalised by
    `norm(name, x)` (None: zeros, the training mean), emotion [b, emotion_dim] (None: the empty emotion offset)."""
    g = torch.zeros(b, 2, device=device)
    if gaze is not None:
        g = norm("gaze", torch.as_tensor(gaze, dtype=torch.float32, device=device).expand(b, 2))
    d = torch.zeros(b, 1, device=device)
    if distance is not None:
        d = norm("distance", torch.as_tensor([distance], dtype=torch.float32, device=device).expand(b, 1))
    e = None
    if emotion is not None:
        e = torch.as_tensor(emotion, dtype=torch.float32, device=device)
        if e.numel() != emotion_dim:
            raise ValueError(f"emotion must have {emotion_dim} values, got {e.numel()}")
        e = e.expand(b, emotion_dim)
    return g, d, e


def sample_motion(net: MotionDiT, schedule: CosineSchedule, audio: torch.Tensor, gaze, distance, emotion, **kw):
    """Offline: the whole clip's motion [B, T, M] (the same windows as streaming, concatenated)."""
    return torch.cat(list(iter_motion_windows(net, schedule, audio, gaze, distance, emotion, **kw)), dim=1)
