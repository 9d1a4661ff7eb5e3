"""Blinks, LMD, Delta P, CPBD, CSIM and CAPP give the same values on 1 and 2 processes (gloo), one spawn for all."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from ddp_harness import compute_distributed, compute_single

from data.synthetic.generator import SyntheticConfig, iter_clips
from data.synthetic.perturb import freeze_video
from metrics.base import EvalSample

HAVE_DLIB = importlib.util.find_spec("dlib") is not None and importlib.util.find_spec("face_recognition_models")


def _samples() -> list[EvalSample]:
    cfg = SyntheticConfig(seed=3, n_speakers=4, n_clips=5, size=96, min_seconds=2.0, max_seconds=2.6)
    out = []
    for i, clip in enumerate(iter_clips(cfg)):
        fake = freeze_video(clip) if i % 2 else clip
        out.append(
            EvalSample(
                index=i,
                clip_id=clip.clip_id,
                fake=fake.video,
                real=clip.video,
                audio=clip.audio,
                fake_landmarks=fake.landmarks,
                real_landmarks=clip.landmarks,
            )
        )
    # a clip without landmarks: a failure for the landmark metrics, counted once over both processes
    out.append(EvalSample(index=len(out), clip_id="bare", fake=out[0].fake, real=out[0].real))
    return out


def _capp():
    import torch

    from metrics.backbones.capp import CappConfig, CappNet
    from metrics.pose import AudioPoseAlignment

    torch.manual_seed(0)  # the same (untrained) CAPP in every process
    return AudioPoseAlignment(net=CappNet(CappConfig(window=25, hop=10)).eval(), landmarks="file")


def _metrics():
    from metrics.blinks import BlinkMetrics
    from metrics.cpbd import CPBD
    from metrics.headpose import HeadPoseVariation
    from metrics.lmd import LandmarkDistance

    out = {
        "blinks_paper": BlinkMetrics(mode="paper", landmarks="file"),
        "blinks_standard": BlinkMetrics(mode="standard", landmarks="file"),
        "lmd": LandmarkDistance(landmarks="file"),
        "delta_p": HeadPoseVariation(landmarks="file"),
        "cpbd": CPBD(stride=4),
        "capp": _capp(),
    }
    if HAVE_DLIB:
        from metrics.csim import IdentitySimilarity

        out["csim"] = IdentitySimilarity(frames=1, landmarks="file")
    return out


def test_two_processes_equal_one():
    samples = _samples()
    one = compute_single(_metrics, samples)
    two = compute_distributed(_metrics, samples, world_size=2)
    assert one.keys() == two.keys()
    assert one["blinks_standard"]["n_blinks"] > 0 and one["lmd"]["lmd"] > 0
    for name in one:
        for k, v in one[name].items():
            assert np.isfinite(v), (name, k)
            assert two[name][k] == pytest.approx(v, rel=1e-12, abs=1e-12), (name, k)
