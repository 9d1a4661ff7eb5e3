"""SyncNet scores as a clip metric: AV offset, AV confidence (syncnet_python) and LSE-D, LSE-C (Wav2Lip).

One pass of the syncnet_python algorithm (`metrics.functional.sync`) per generated clip with its audio gives
all four numbers. ``av_conf`` and ``lse_c`` are the same per-clip value (Wav2Lip's LSE-C is syncnet_python's
confidence averaged over videos); both names are reported because the two literatures use both. ``lse_d`` is
syncnet_python's "min dist". Their scale depends on the evaluator: raw 1024-d embeddings for syncnet_v2 (S),
unit vectors (distances in [0, 2]) for the calibrated small evaluator, so results are comparable only for the
same evaluator weights (recorded in ``evaluator_info``).
"""

from __future__ import annotations

from torch import nn

from metrics.base import ClipMetric, ClipScoreError, EvalSample
from metrics.functional.sync import BATCH_SIZE, VSHIFT, check_crop, sync_scores


class SyncNetScores(ClipMetric):
    """Per-clip (av_offset, av_conf, lse_d, lse_c) of ``EvalSample.fake`` against ``EvalSample.audio``.

    evaluator: a SyncNet module with the `metrics.backbones.syncnet` interface (kept in eval mode, no grad);
    crop: "wholeframe" (Wav2Lip's LRS protocol: every frame resized to 224x224); vshift, batch_size: the
    syncnet_python defaults 15 and 20; device: where the evaluator runs (None: where it already is);
    weights_name / weights_sha256: recorded in ``evaluator_info`` with the evaluator's arch.
    Clips with fewer than 6 frames of video or audio, or without audio, are counted as failures.
    """

    outputs = ("av_offset", "av_conf", "lse_d", "lse_c")
    higher_is_better = None  # mixed: see the METRICS registry for each output's direction
    config_section = "sync"  # configs/metrics/default.yaml section holding its settings
    needs_evaluator = True  # the caller passes the SyncNet built from registered weights
    evaluator_key = "syncnet"

    def __init__(
        self,
        evaluator: nn.Module,
        *,
        crop: str = "wholeframe",
        vshift: int = VSHIFT,
        batch_size: int = BATCH_SIZE,
        device: str | None = None,
        weights_name: str | None = None,
        weights_sha256: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.crop = check_crop(crop)
        if vshift < 1 or batch_size < 1:
            raise ValueError(f"vshift and batch_size must be >= 1, got {vshift} and {batch_size}")
        self.vshift, self.batch_size = int(vshift), int(batch_size)
        if device is not None:
            evaluator = evaluator.to(device)
        evaluator.eval().requires_grad_(False)
        self.evaluator = evaluator
        config = getattr(evaluator, "evaluator_config", None) or {"arch": type(evaluator).__name__, "kwargs": {}}
        self.evaluator_info = {
            "arch": config["arch"],
            "kwargs": dict(config.get("kwargs", {})),
            "weights": weights_name,
            "sha256": weights_sha256,
            "crop": self.crop,
            "vshift": self.vshift,
        }

    def train(self, mode: bool = True) -> SyncNetScores:
        # Lightning toggles train/eval on every module it owns; the evaluator's BatchNorm must stay frozen
        super().train(mode)
        self.evaluator.eval()
        return self

    def score_clip(self, sample: EvalSample) -> tuple[float, float, float, float]:
        if sample.audio is None:
            raise ClipScoreError("SyncNet scores need the clip's audio")
        res = sync_scores(
            self.evaluator, sample.fake, sample.audio, crop=self.crop, vshift=self.vshift, batch_size=self.batch_size
        )
        return float(res.offset), res.conf, res.min_dist, res.conf
