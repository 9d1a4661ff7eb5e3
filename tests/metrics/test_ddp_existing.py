"""OFM, F-MSE and the SyncNet scores give the same values on 1 and 2 processes (gloo) for an odd clip count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ddp_harness import compute_distributed, compute_single

from data.clip import SAMPLES_PER_FRAME
from metrics.base import EvalSample
from metrics.flow import FrameMSE, OpticalFlowMagnitude


def _samples(n: int = 5, frames: int = 12, size: int = 48) -> list[EvalSample]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        video = rng.integers(0, 256, (frames + i, size, size, 3), dtype=np.uint8)
        audio = rng.standard_normal((frames + i) * SAMPLES_PER_FRAME).astype(np.float32) * 0.1
        out.append(EvalSample(index=i, clip_id=f"c{i}", fake=video, audio=audio))
    # one clip the metrics cannot score: failures must be counted once, not per process
    out.append(EvalSample(index=n, clip_id="short", fake=out[0].fake[:1], audio=out[0].audio[:SAMPLES_PER_FRAME]))
    return out


def _sync_metric():
    from metrics.backbones.syncnet import build_sync_evaluator
    from metrics.sync import SyncNetScores

    torch.manual_seed(0)
    return SyncNetScores(build_sync_evaluator("small"), vshift=3, batch_size=8)


def _metrics():
    return {
        "ofm": OpticalFlowMagnitude(mode="paper"),
        "fmse_paper": FrameMSE(mode="paper"),
        "fmse_standard": FrameMSE(mode="standard"),
        "sync": _sync_metric(),
    }


def test_two_processes_equal_one():
    samples = _samples()
    one = compute_single(_metrics, samples)
    two = compute_distributed(_metrics, samples, world_size=2)
    assert one.keys() == two.keys()
    for name in one:
        assert one[name].keys() == two[name].keys()
        for k, v in one[name].items():
            assert np.isfinite(v), (name, k)
            assert two[name][k] == pytest.approx(v, rel=1e-12, abs=1e-12), (name, k)
