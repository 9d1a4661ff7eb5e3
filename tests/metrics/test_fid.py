"""FID: Fréchet math vs scipy (the pytorch-fid way), TF1 resize known answers, strict loads from the reference
table, the metric's behaviour (weights status, frame selection, low-n refusal), the runner's set-metric path
(per-clip feature files, resume, reference cache, GT row without a value) and 1-vs-2-process parity."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from ddp_harness import compute_distributed, compute_single
from omegaconf import OmegaConf

from metrics.backbones.inception import (
    FIDInceptionV3,
    build_fid_inception,
    random_init_,
    read_evaluator_state_dict,
    resize_tf1_bilinear,
)
from metrics.base import ClipFeatures, ClipScoreError, EvalSample, SetMetric, SetScoreError
from metrics.functional.frechet import frechet_distance, frechet_distance_features, frechet_distance_from_sums

TABLE = Path(__file__).resolve().parents[1] / "data_files" / "fid_inception_v3_state_dict.tsv"


def read_table(path: Path) -> list[tuple[str, list[int], str]]:
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()[1:]]
    return [(k, [int(x) for x in s.strip("[]").split(",") if x.strip()], d) for k, s, d in rows]


def scipy_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """pytorch-fid's calculate_frechet_distance: sqrtm of the product, real part."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


# ------------------------------------------------------------------------------------------------ Fréchet math


@pytest.mark.parametrize("n,d,seed", [(200, 16, 0), (60, 32, 1), (500, 64, 2)])
def test_frechet_equals_scipy_sqrtm(n, d, seed):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d))
    f1 = rng.standard_normal((n, d)) @ mix
    f2 = rng.standard_normal((n + 7, d)) @ (mix + 0.3 * rng.standard_normal((d, d))) + 0.5
    ref = scipy_fid(f1, f2)
    got = frechet_distance_features(torch.from_numpy(f1), torch.from_numpy(f2)).item()
    assert got == pytest.approx(ref, rel=1e-6)
    # the same from sufficient statistics (what the metric states hold)
    t1, t2 = torch.from_numpy(f1), torch.from_numpy(f2)
    sums = frechet_distance_from_sums(len(f1), t1.sum(0), t1.T @ t1, len(f2), t2.sum(0), t2.T @ t2).item()
    assert sums == pytest.approx(ref, rel=1e-6)


def test_frechet_known_answers():
    eye = torch.eye(5, dtype=torch.float64)
    mu = torch.arange(5, dtype=torch.float64)
    assert frechet_distance(mu, eye, mu, eye).item() == pytest.approx(0, abs=1e-12)
    # mean shift v adds |v|^2; scaling one covariance by c^2 adds d (c - 1)^2
    assert frechet_distance(mu, eye, mu + 2, eye).item() == pytest.approx(20.0)
    assert frechet_distance(mu, eye, mu, 9 * eye).item() == pytest.approx(5 * 4.0)
    # symmetric in its arguments, even for rank-deficient covariances (n < d)
    rng = np.random.default_rng(3)
    a, b = torch.from_numpy(rng.standard_normal((4, 10))), torch.from_numpy(rng.standard_normal((5, 10)))
    ab, ba = frechet_distance_features(a, b).item(), frechet_distance_features(b, a).item()
    assert np.isfinite(ab) and ab == pytest.approx(ba, rel=1e-7)  # sqrt of ~0 eigenvalues: 1e-8 noise


# ------------------------------------------------------------------------------------------------ backbone


def test_state_dict_matches_reference_table():
    net = build_fid_inception()
    got = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in net.state_dict().items()]
    assert got == read_table(TABLE)
    assert len(got) == 566


def test_official_layouts_load_strictly(tmp_path, monkeypatch):
    """pytorch-fid's file (with num_batches_tracked) and torch-fidelity's converter output (without) both import."""
    from benchmark.weights import import_weights

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    table = read_table(TABLE)
    full = {k: torch.full(s, 0.5) if d == "float32" else torch.tensor(0) for k, s, d in table}
    no_nbt = {k: v for k, v in full.items() if not k.endswith("num_batches_tracked")}
    for name, sd in (("with.pth", full), ("without.pth", no_nbt)):
        torch.save(sd, tmp_path / name)
        assert len(read_evaluator_state_dict(tmp_path / name)) == 566
        import_weights(tmp_path / name, "pt_inception-2015-12-05-6726825d")
        FIDInceptionV3().load_state_dict(read_evaluator_state_dict(tmp_path / name), strict=True)
    bad = dict(full)
    bad["fc.weight"] = torch.zeros(1000, 2048)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(Exception, match="fc.weight"):
        import_weights(tmp_path / "bad.pth", "pt_inception-2015-12-05-6726825d")


def test_tf1_resize_known_answers():
    x = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4)
    up = resize_tf1_bilinear(x, (6, 8))
    # TF1 (align_corners=False, no half-pixel centres): out[2i] = in[i], out[2i+1] = mean of in[i], in[i+1],
    # and the last row/column repeats the edge
    assert torch.equal(up[..., ::2, ::2], x)
    assert torch.allclose(up[0, 0, 0, 1::2], torch.tensor([0.5, 1.5, 2.5, 3.0]))
    assert torch.allclose(up[0, 0, 1::2, 0], torch.tensor([2.0, 6.0, 8.0]))
    down = resize_tf1_bilinear(torch.arange(16.0).reshape(1, 1, 4, 4), (2, 2))
    assert torch.equal(down[0, 0], torch.tensor([[0.0, 2.0], [8.0, 10.0]]))  # in[2i, 2j]: no antialias


# ------------------------------------------------------------------------------------------------ metric


def _clip(seed: int, t: int = 4, size: int = 40, shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 200, (t, size, size, 3)) + shift, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def fid_metric_cls():
    from metrics.fid import FrechetInceptionDistance

    return FrechetInceptionDistance


def test_fid_pipeline_random_weights(fid_metric_cls):
    torch.set_num_threads(1)
    m = fid_metric_cls(frame_stride=2, allow_low_n=True, batch_size=3)
    assert m.evaluator_info["status"] == "random" and m.evaluator_info["resize"] == "tf1"
    assert m.frame_indices(5) == [0, 2, 4]
    a, b = _clip(0), _clip(1, shift=55)
    feats = m.clip_features_batch([a, b])  # 2 + 2 frames in batches of 3, split back per clip
    assert [tuple(f.shape) for f in feats] == [(2, 2048), (2, 2048)]
    assert torch.allclose(feats[0], m.clip_features(a), atol=1e-5)
    m.update([ClipFeatures(0, "a", feats[0]), ClipFeatures(1, "b", feats[1], real=True)])
    m.update([ClipFeatures(2, "c", feats[0]), ClipFeatures(3, "d", feats[1], real=True)])
    far = m.compute()["fid_tf1"].item()
    m.reset()  # the real set is kept (reset_real_features=False): only the generated one changes
    m.update([ClipFeatures(0, "a", feats[1]), ClipFeatures(2, "c", feats[1])])
    near = m.compute()["fid_tf1"].item()
    assert near == pytest.approx(0.0, abs=1e-6 * far) and far > 0
    with pytest.raises(ClipScoreError):
        m.check_clip(np.zeros((0, 8, 8, 3), np.uint8))


def test_fid_refuses_low_n(fid_metric_cls):
    m = fid_metric_cls(weights="random")
    x = torch.randn(10, 2048)
    m.update([ClipFeatures(0, "a", x), ClipFeatures(1, "b", x + 1, real=True)])
    with pytest.raises(SetScoreError, match="2049"):
        m.compute()


# ------------------------------------------------------------------------------------------------ pytorch-fid


def test_fid_pytorchfid_preprocessing_matches_pytorch_fid():
    """pytorch-fid: `ToTensor` (x / 255), `F.interpolate(299, bilinear, align_corners=False)`, `2x - 1`, pool3;
    the same weight file loads strictly into its network."""
    from metrics.fid import FrechetInceptionDistancePytorchFID, PytorchFIDInceptionV3

    torch.set_num_threads(1)
    m = FrechetInceptionDistancePytorchFID(weights="random", allow_low_n=True)
    assert m.mode == "pytorch-fid" and m.evaluator_info["input"].startswith("float RGB x / 255")
    PytorchFIDInceptionV3().load_state_dict(FIDInceptionV3().state_dict(), strict=True)
    frames = _clip(2, t=2, size=40)
    ours = m.clip_features(frames)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    theirs = m.inception.features(2 * x - 1)
    assert ours.shape == (2, 2048)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_fid_pytorchfid_formula_equals_pytorch_fid():
    """The value from the metric's sums equals pytorch-fid's `calculate_frechet_distance` (np.cov, scipy sqrtm of
    the product, real part) on fixed features. They live in 64 of the 2048 dimensions, so scipy runs on that
    block (the zero dimensions add nothing to any term) in well under a second instead of ~40 s."""
    from metrics.fid import FrechetInceptionDistancePytorchFID

    rng = np.random.default_rng(11)
    mix = rng.standard_normal((64, 64)) / 8
    block1 = (rng.standard_normal((300, 64)) @ mix).astype(np.float32)
    block2 = (rng.standard_normal((280, 64)) @ mix + 0.2).astype(np.float32)
    f1, f2 = np.zeros((300, 2048), np.float32), np.zeros((280, 2048), np.float32)
    f1[:, 100:164], f2[:, 100:164] = block1, block2
    m = FrechetInceptionDistancePytorchFID(weights="random", allow_low_n=True)
    m.update([ClipFeatures(i, f"g{i}", torch.from_numpy(f1[i : i + 3])) for i in range(0, 300, 3)])
    m.update([ClipFeatures(i, f"r{i}", torch.from_numpy(f2[i : i + 4]), real=True) for i in range(0, 280, 4)])
    assert m.compute()["fid_pytorchfid"].item() == pytest.approx(scipy_fid(block1, block2), rel=1e-6)


def test_fid_synthetic_protocol_and_registered_weights(fid_metric_cls, tmp_path, monkeypatch):
    """The synthetic corpus's CPU protocol is its dataset config's setting, not the metric's: the metric takes
    the frame selection it is given, whatever the corpus."""
    from benchmark.config import compose
    from data.corpus import SyntheticCorpus
    from metrics import weights as store

    settings = OmegaConf.to_container(compose(None, "synthetic").metrics.fid, resolve=True)
    m = fid_metric_cls(**{**settings, "weights": "random"})
    assert (m.frame_stride, m.allow_low_n) == (10, True)
    real = OmegaConf.to_container(compose(None, "crema").metrics.fid, resolve=True)
    assert (real["frame_stride"], real["allow_low_n"]) == (1, False)
    corpus = SyntheticCorpus.__new__(SyntheticCorpus)  # the corpus's type no longer changes the settings
    m = fid_metric_cls(weights="random", corpus=corpus)
    assert (m.frame_stride, m.allow_low_n) == (1, False)
    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path))
    net = random_init_(build_fid_inception(), 5)
    meta = {"sha256_official": True}  # as `bench weights import` records a file whose pinned sha256 matched
    store.register_object(net.state_dict(), "pt_inception-2015-12-05-6726825d", "fid", "official", False, meta)
    m = fid_metric_cls()
    assert m.evaluator_info["status"] == "official"
    assert torch.equal(m.inception.fc.weight, net.fc.weight)


# ------------------------------------------------------------------------------------------------ DDP


class MeanColour(SetMetric):
    """A cheap set metric (mean RGB of each frame, d = 3) for the runner and DDP tests."""

    outputs = ("mean_colour_fd",)
    feature_dim = 3

    def check_clip(self, video):
        if len(video) < 2:
            raise ClipScoreError("needs 2 frames")

    def clip_features_batch(self, videos):
        return [torch.from_numpy(v.reshape(len(v), -1, 3).mean(1)).float() for v in videos]


def _features_samples():
    rng = np.random.default_rng(11)
    out = []
    for i in range(7):
        out.append(ClipFeatures(i, f"f{i}", torch.from_numpy(rng.standard_normal((3, 2048))).float()))
        out.append(ClipFeatures(i, f"r{i}", torch.from_numpy(rng.standard_normal((2, 2048)) + 0.2).float(), True))
    return out


def _fid_factory():
    from metrics.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(weights="random", allow_low_n=True)


def _video_samples():
    out = [EvalSample(i, f"c{i}", _clip(i, t=3 + i % 2), real=_clip(50 + i, t=3)) for i in range(5)]
    out.append(EvalSample(5, "short", _clip(9, t=1), real=_clip(9, t=1)))  # counted once, not per process
    return out


def _mean_colour_factory():
    return MeanColour(allow_low_n=True)


def test_two_processes_equal_one():
    for factory, samples, key in (
        (_fid_factory, _features_samples(), "fid_tf1"),
        (functools.partial(_mean_colour_factory), _video_samples(), "mean_colour_fd"),
    ):
        one = compute_single(factory, samples)
        two = compute_distributed(factory, samples, world_size=2)
        assert np.isfinite(one[key]) and two[key] == pytest.approx(one[key], rel=1e-9)


# ------------------------------------------------------------------------------------------------ runner


class _Clip:
    def __init__(self, clip_id: str, video: np.ndarray) -> None:
        self.clip_id, self.video, self.audio, self.landmarks = clip_id, video, None, None
        self.num_frames, self.speaker_id = len(video), clip_id.split("/")[0]


def test_runner_set_metric_features_resume_and_reference(tmp_path):
    from benchmark.features import feature_key
    from benchmark.scoring import score_clips

    clips = [_Clip(f"spk/c{i}", _clip(i, t=4, size=16)) for i in range(4)] + [_Clip("spk/short", _clip(9, 1, 16))]
    fakes = {c.clip_id: np.clip(c.video.astype(int) + 30, 0, 255).astype(np.uint8) for c in clips}
    fetched: list[str] = []

    def fetch(i, clip):
        fetched.append(clip.clip_id)
        return fakes[clip.clip_id]

    def reference(metric):
        metric.update(
            [ClipFeatures(i, c.clip_id, metric.clip_features(c.video), True) for i, c in enumerate(clips[:4])]
        )

    names = ["mean_colour_fd"]
    import metrics as metrics_pkg
    from metrics import MetricSpec

    metrics_pkg.METRICS["mean_colour_fd"] = MetricSpec("tests:MeanColour", "lower", "mean_colour_fd")
    try:
        m = MeanColour(allow_low_n=True)
        m.evaluator_info = {"arch": "mean"}
        samples = tmp_path / "run" / "samples.partial.jsonl"
        # the GT row (no reference): features are written, no value
        res, rows = score_clips(clips, fetch, {"t": m}, names, samples, progress=False)
        assert res == {} and rows[0]["features"]["t"]["n"] == 4 and "t" in rows[-1]["failed"]
        key = feature_key(m)
        assert len(list((tmp_path / "run" / "features" / key).glob("*.npy"))) == 4
        # resume: finished clips come back from their feature files, nothing is fetched again
        fetched.clear()
        m2 = MeanColour(allow_low_n=True)
        m2.evaluator_info = {"arch": "mean"}
        res2, _ = score_clips(clips, fetch, {"t": m2}, names, samples, progress=False, reference=reference)
        assert fetched == [] and res2["mean_colour_fd"].n == 4 and res2["mean_colour_fd"].n_failed == 1
        direct = MeanColour(allow_low_n=True)
        direct.update([EvalSample(i, c.clip_id, fakes[c.clip_id], real=c.video) for i, c in enumerate(clips[:4])])
        assert res2["mean_colour_fd"].value == pytest.approx(direct.compute()["mean_colour_fd"].item(), rel=1e-9)
        # a deleted feature file makes its clip be scored again; refusing sets gives NaN and a note
        next((tmp_path / "run" / "features" / key).glob("*.npy")).unlink()
        notes: list[str] = []
        strict = MeanColour()
        strict.evaluator_info = {"arch": "mean"}
        two_real = lambda metric: metric.update([ClipFeatures(0, "x", torch.zeros(2, 3), real=True)])  # noqa: E731
        res3, _ = score_clips(clips, fetch, {"t": strict}, names, samples, False, two_real, notes)
        assert len(fetched) == 1 and np.isnan(res3["mean_colour_fd"].value) and "mean_colour_fd" in notes[0]
    finally:
        del metrics_pkg.METRICS["mean_colour_fd"]
