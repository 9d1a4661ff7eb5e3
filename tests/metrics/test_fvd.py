"""FVD: I3D strict loads from the reference table, forward contract, window protocol, low-n refusal, the
TorchScript backend, Fréchet parity with scipy on I3D-sized features, and 1-vs-2-process parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ddp_harness import compute_distributed, compute_single

from metrics.backbones.i3d import InceptionI3d, build_i3d, preprocess_i3d, read_torchscript_i3d
from metrics.backbones.inception import random_init_, read_evaluator_state_dict
from metrics.base import ClipFeatures, EvalSample, SetScoreError

TABLE = Path(__file__).resolve().parents[1] / "data_files" / "i3d_inception_kinetics400_state_dict.tsv"


def read_table(path: Path) -> list[tuple[str, list[int], str]]:
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()[1:]]
    return [(k, [int(x) for x in s.strip("[]").split(",") if x.strip()], d) for k, s, d in rows]


def test_state_dict_matches_reference_table():
    got = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in build_i3d().state_dict().items()]
    assert got == read_table(TABLE) and len(got) == 344


def test_i3d_pretrained_400_layout_imports(tmp_path, monkeypatch):
    """VideoGPT/TATS's file: 287 tensors, no num_batches_tracked; imported strictly and loaded by the metric."""
    from benchmark.weights import import_weights
    from metrics.fvd import FrechetVideoDistance

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    net = random_init_(build_i3d(), 3)
    sd = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(sd) == 287
    torch.save(sd, tmp_path / "i3d_pretrained_400.pt")
    InceptionI3d().load_state_dict(read_evaluator_state_dict(tmp_path / "i3d_pretrained_400.pt"), strict=True)
    import_weights(tmp_path / "i3d_pretrained_400.pt", "i3d_pretrained_400")
    m = FrechetVideoDistance()
    # no official sha256 is pinned for this file: imported, unverified (marked § in tables)
    assert m.evaluator_info["status"] == "unverified" and m.evaluator_info["bn_eps"] == 1e-5
    assert torch.equal(m.i3d.net.logits.conv3d.weight, net.logits.conv3d.weight)
    torch.save({k: v for k, v in list(sd.items())[2:]}, tmp_path / "cut.pt")
    with pytest.raises(Exception, match="missing"):
        import_weights(tmp_path / "cut.pt", "i3d_pretrained_400")


def test_forward_contract_and_preprocessing():
    torch.set_num_threads(1)
    video = torch.randint(0, 256, (1, 16, 32, 40, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = preprocess_i3d(video)
    # [-1, 1] up to float rounding of the resize (values land within one ulp of the ends)
    assert x.shape == (1, 3, 16, 224, 224) and x.min() >= -1 - 1e-6 and x.max() <= 1 + 1e-6
    assert torch.allclose(preprocess_i3d(torch.full((1, 2, 8, 8, 3), 255, dtype=torch.uint8)), torch.tensor(1.0))
    net = random_init_(build_i3d(), 0)
    out = net.logits_per_step(x)
    assert out.shape == (1, 400, 1)  # T' = ceil(ceil(ceil(16/2)/2)/2) - 1
    assert torch.allclose(net(x), out.mean(2))
    with pytest.raises(ValueError, match="224"):
        net(torch.zeros(1, 3, 16, 112, 112))


class _ScriptedI3D(torch.nn.Module):
    """Stand-in with StyleGAN-V's TorchScript signature: uint8 [B, 3, T, H, W] -> [B, 400]."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 400)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False):
        x = x.float()
        if rescale:
            x = x / 255.0 * 2 - 1
        return self.proj(x.mean(dim=(2, 3, 4)))


def test_torchscript_backend(tmp_path, monkeypatch):
    from benchmark.weights import import_weights
    from metrics.fvd import FrechetVideoDistance

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    torch.jit.script(_ScriptedI3D()).save(str(tmp_path / "i3d_torchscript.pt"))
    assert read_torchscript_i3d(tmp_path / "i3d_torchscript.pt") == {}
    import_weights(tmp_path / "i3d_torchscript.pt", "i3d_torchscript")
    torch.save({"x": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(Exception, match="not a TorchScript"):
        import_weights(tmp_path / "plain.pt", "i3d_torchscript")
    m = FrechetVideoDistance(window_stride=4, allow_low_n=True)  # auto -> the registered TorchScript
    assert m.evaluator_info["arch"].startswith("i3d_torchscript") and m.evaluator_info["status"] == "unverified"
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (20 + i, 24, 24, 3), dtype=np.uint8) for i in range(3)]
    feats = m.clip_features_batch(clips)
    assert [f.shape[0] for f in feats] == [2, 2, 2]  # windows start at 0, 4 (a third would need 24 frames)
    m.update([EvalSample(i, f"c{i}", c, real=c[::-1].copy()) for i, c in enumerate(clips)])
    assert np.isfinite(m.compute()["fvd_16f"].item())


def test_window_protocol_failures_and_refusal():
    from metrics.fvd import FrechetVideoDistance

    m = FrechetVideoDistance(weights="random")
    assert m.window_starts(40) == [0] and m.window_starts(15) == []
    m2 = FrechetVideoDistance(weights="random", window_stride=8, max_windows=3)
    assert m2.window_starts(40) == [0, 8, 16] and m2.window_starts(16) == [0]
    short = np.zeros((15, 16, 16, 3), np.uint8)
    m.update([EvalSample(0, "short", short, real=short)])
    assert int(m.n_failed) == 1 and "16 frames" in m.failures[0][1]
    rng = np.random.default_rng(1)
    m.update([ClipFeatures(i, f"c{i}", torch.from_numpy(rng.standard_normal((1, 400))), i % 2 == 1) for i in range(60)])
    with pytest.raises(SetScoreError, match="401"):
        m.compute()


def test_fvd_math_equals_scipy():
    """The value from the metric's sum states equals pytorch-fid/StyleGAN-V's scipy sqrtm on the same features."""
    import scipy.linalg

    from metrics.fvd import FrechetVideoDistance

    rng = np.random.default_rng(5)
    mix = rng.standard_normal((400, 400)) / 20
    fake = rng.standard_normal((600, 400)) @ mix
    real = rng.standard_normal((650, 400)) @ mix + 0.1
    m = FrechetVideoDistance(weights="random")
    m.update([ClipFeatures(0, "f", torch.from_numpy(fake)), ClipFeatures(1, "r", torch.from_numpy(real), True)])
    s1, s2 = np.cov(fake, rowvar=False), np.cov(real, rowvar=False)
    diff = fake.mean(0) - real.mean(0)
    ref = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    assert m.compute()["fvd_16f"].item() == pytest.approx(ref, rel=1e-6)


def _fvd_factory():
    from metrics.fvd import FrechetVideoDistance

    return FrechetVideoDistance(weights="random", allow_low_n=True)


def test_two_processes_equal_one():
    rng = np.random.default_rng(2)
    samples = [ClipFeatures(i, f"c{i}", torch.from_numpy(rng.standard_normal((2, 400))), i % 3 == 0) for i in range(9)]
    one = compute_single(_fvd_factory, samples)
    two = compute_distributed(_fvd_factory, samples, world_size=2)
    assert np.isfinite(one["fvd_16f"]) and two["fvd_16f"] == pytest.approx(one["fvd_16f"], rel=1e-9)
