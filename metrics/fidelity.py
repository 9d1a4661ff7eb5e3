"""PSNR and SSIM of generated frames against the ground-truth frames (the ablation tables' reconstruction metrics).

Per frame on full RGB frames at the reference's size (the runner resizes generated clips to it), 0-255 scale,
averaged over the clip's frames; the reported value is the mean over clips (docs/metrics_reference.md).
- PSNR = 10 log10(255^2 / MSE) over the frame's pixels and channels (torchmetrics `peak_signal_noise_ratio`,
  data_range 255); a frame identical to its reference has infinite PSNR, so does its clip (the GT row).
- SSIM: Wang et al. 2004 with an 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data_range 255, averaged
  over channels and the pixels where the whole window fits (the SSIM map of torchmetrics
  `structural_similarity_index_measure` with a 5-pixel border cropped, which equals skimage's
  `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from metrics.base import ClipMetric, ClipScoreError, EvalSample
from metrics.functional.resize import to_size

DATA_RANGE = 255.0
SIGMA = 1.5
PRECISIONS = {"float32": torch.float32, "float64": torch.float64}
RADIUS = int(3.5 * SIGMA + 0.5)  # the Gaussian window's radius (11x11), as torchmetrics and skimage truncate it


def frame_psnr_ssim(
    fake: np.ndarray, real: np.ndarray, batch_size: int = 64, precision: str = "float32"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame PSNR and SSIM of uint8 `[T, H, W, 3]` frames against their references (float64 arrays [T]).

    PSNR is computed in float64 either way. precision: the SSIM filtering's dtype; "float64" equals skimage to
    round-off but PyTorch's float64 convolution is ~40x slower on CPU (0.2 s per 128x128 frame on one core);
    "float32" differs from skimage by up to ~3e-5 (E[x^2] - E[x]^2 cancellation in flat regions).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    psnr, ssim = [], []
    for start in range(0, len(fake), batch_size):
        a = torch.from_numpy(np.ascontiguousarray(fake[start : start + batch_size])).permute(0, 3, 1, 2).double()
        b = torch.from_numpy(np.ascontiguousarray(real[start : start + batch_size])).permute(0, 3, 1, 2).double()
        psnr.append(peak_signal_noise_ratio(a, b, data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3)))
        _, ssim_map = structural_similarity_index_measure(
            a.to(dtype),
            b.to(dtype),
            gaussian_kernel=True,
            sigma=SIGMA,
            data_range=DATA_RANGE,
            reduction="none",
            return_full_image=True,
        )
        # torchmetrics averages the whole map, border pixels computed on reflect padding included; skimage (and
        # Wang et al.'s reference code) average only where the window fits: crop the kernel radius on each side
        ssim.append(ssim_map[..., RADIUS:-RADIUS, RADIUS:-RADIUS].double().mean(dim=(1, 2, 3)))
    return torch.cat(psnr).numpy(), torch.cat(ssim).numpy()


class FidelityScores(ClipMetric):
    """Per-clip (psnr, ssim): means over frames of `EvalSample.fake` against `EvalSample.real`.

    Needs the reference frames at the same frame count (the runner trims both to the shorter); generated frames of
    another size are brought to the reference's size here, once (metrics.functional.resize.to_size: the pixel
    pairing needs one grid, and the reference's is the one the comparison is about). Clips without a reference are
    counted as failures. `update` batches frames across clips.
    """

    outputs = ("psnr", "ssim")
    higher_is_better = True
    config_section = "fidelity"

    def __init__(self, batch_size: int = 64, precision: str = "float32", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        self.batch_size, self.precision = int(batch_size), precision

    @staticmethod
    def _paired(sample: EvalSample) -> tuple[np.ndarray, np.ndarray]:
        """(generated frames at the reference's size, reference frames); ClipScoreError when they cannot pair."""
        real, fake = sample.real, sample.fake
        if real is None:
            raise ClipScoreError("PSNR/SSIM need the ground-truth frames")
        if fake.ndim != 4 or fake.shape[-1] != 3 or real.ndim != 4 or len(fake) != len(real):
            raise ClipScoreError(
                f"PSNR/SSIM need generated and reference frames [T, H, W, 3] of one length, got "
                f"{tuple(fake.shape)} and {tuple(real.shape)}"
            )
        if real.shape[0] < 1 or min(real.shape[1:3]) < 11:
            raise ClipScoreError(f"SSIM needs frames of at least 11x11, got {tuple(real.shape)}")
        return to_size(fake, real.shape[1:3]), real

    def score_clip(self, sample: EvalSample) -> tuple[float, float]:
        fake, real = self._paired(sample)
        psnr, ssim = frame_psnr_ssim(fake, real, self.batch_size, self.precision)
        return float(psnr.mean()), float(ssim.mean())

    def update(self, samples: Sequence[EvalSample]) -> None:
        ok: list[tuple[EvalSample, np.ndarray, np.ndarray]] = []
        for sample in samples:
            try:
                ok.append((sample, *self._paired(sample)))
            except ClipScoreError as err:
                self.record_failure(sample.clip_id, str(err))
        # frames of every clip of one shape go through torchmetrics together, then split back per clip
        by_shape: dict[tuple[int, ...], list[tuple[EvalSample, np.ndarray, np.ndarray]]] = {}
        for item in ok:
            by_shape.setdefault(item[2].shape[1:], []).append(item)
        for group in by_shape.values():
            psnr, ssim = frame_psnr_ssim(
                np.concatenate([fake for _, fake, _ in group]),
                np.concatenate([real for _, _, real in group]),
                self.batch_size,
                self.precision,
            )
            start = 0
            for sample, fake, _ in group:
                t = len(fake)
                vals = [float(psnr[start : start + t].mean()), float(ssim[start : start + t].mean())]
                start += t
                self.values.append(torch.tensor([vals], dtype=torch.float64))
                self.index.append(torch.tensor([sample.index], dtype=torch.long))
