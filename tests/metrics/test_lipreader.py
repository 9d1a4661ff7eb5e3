"""Lipreader backbone: strict loads from the mpc001 reference tables, mouth crops, calibration on synthetic words."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from metrics.backbones.lipreader import (
    LRW_500_WORDS,
    build_lipreader,
    load_lipreader_weights,
    read_lipreader_state_dict,
)
from metrics.functional.mouth import MEAN, STD, mouth_crops, mouth_rois, mouth_transforms, pad_batch, word_frames

DATA = Path(__file__).resolve().parents[1] / "data_files"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHARED_WORDS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "lrw_500_words.txt"
TABLES = {
    "lrw_resnet18_mstcn": "lrw_lipreader_resnet18_mstcn_state_dict.tsv",
    "lrw_resnet18_mstcn_prelu": "lrw_lipreader_resnet18_mstcn_prelu_state_dict.tsv",
}


def table_rows(name: str) -> list[tuple[str, list[int], str]]:
    rows = []
    for line in (DATA / name).read_text().splitlines()[1:]:
        key, shape, dtype = line.split("\t")
        rows.append((key, [int(s) for s in shape.strip("[]").split(",") if s.strip()], dtype))
    return rows


def state_dict_from_table(name: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        k: torch.zeros(s, dtype=torch.int64) if d == "int64" else torch.randn(s, generator=gen)
        for k, s, d in table_rows(name)
    }


@pytest.mark.parametrize("preset", sorted(TABLES))
def test_state_dict_equals_reference_table(preset):
    sd = build_lipreader(preset).state_dict()
    rows = table_rows(TABLES[preset])
    # same keys in the same registration order, same shapes and dtypes
    assert list(sd) == [k for k, _, _ in rows]
    for key, shape, dtype in rows:
        assert list(sd[key].shape) == shape, key
        assert str(sd[key].dtype) == f"torch.{dtype}", key


@pytest.mark.parametrize("preset", sorted(TABLES))
def test_strict_load_of_mpc001_checkpoint(tmp_path, preset):
    sd = state_dict_from_table(TABLES[preset])
    # mpc001 CheckpointSaver layout
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch_idx": 79, "model_state_dict": sd, "best_prec": 0.889}, path)
    net = load_lipreader_weights(build_lipreader(preset), read_lipreader_state_dict(path), source=str(path))
    key = "tcn.tcn_output.weight"
    assert torch.equal(net.state_dict()[key], sd[key])


def test_swish_model_refuses_prelu_checkpoint(tmp_path):
    path = tmp_path / "old.pth.tar"
    torch.save({"model_state_dict": state_dict_from_table(TABLES["lrw_resnet18_mstcn_prelu"])}, path)
    with pytest.raises(ValueError, match=r"old\.pth\.tar.*unexpected keys.*prelu preset"):
        load_lipreader_weights(build_lipreader("lrw_resnet18_mstcn"), read_lipreader_state_dict(path), str(path))


class _Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_reader_never_runs_foreign_classes(tmp_path):
    """A foreign class beside the weights (what a training script pickles) is never called: the weights load."""
    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {"w": torch.zeros(1)}, "obj": _Marker(tmp_path / "ran")}, path)
    assert list(read_lipreader_state_dict(path)) == ["w"] and not (tmp_path / "ran").exists()
    torch.save({"model_state_dict": _Marker(tmp_path / "ran")}, path)
    with pytest.raises(ValueError, match="no state dict of tensors"):
        read_lipreader_state_dict(path)
    assert not (tmp_path / "ran").exists()


@pytest.mark.skipif(not SHARED_WORDS.exists(), reason="shared reference folder absent")
def test_lrw_labels_are_the_reference_list():
    assert LRW_500_WORDS == tuple(SHARED_WORDS.read_text().split())


def test_small_forward_shapes_and_lengths():
    torch.manual_seed(0)
    net = build_lipreader("small", num_classes=7, labels=tuple("ABCDEFG")).eval()
    x = torch.randn(2, 1, 9, 44, 44)
    with torch.no_grad():
        out = net(x, torch.tensor([9, 5]))
        alone = net(x[1:], torch.tensor([5]))
        full = net(x[1:], torch.tensor([9]))
        feats = net.features(x)
    assert out.shape == (2, 7) and feats.shape == (2, 9, 96)
    # eval mode: a clip's logits do not depend on the other clips of the batch; `lengths` sets the averaged steps
    assert torch.allclose(out[1], alone[0], atol=1e-5)
    assert not torch.allclose(alone, full, atol=1e-4)
    with pytest.raises(ValueError, match="B, 1, T, H, W"):
        net(torch.randn(2, 9, 44, 44))


# ------------------------------------------------------------------------------------------ mouth crops


def face_landmarks(cx: float, cy: float, eye_dist: float, angle_deg: float = 0.0) -> np.ndarray:
    """68 points: outer eye corners at +-eye_dist/2 around (cx, cy), mouth points 0.6 eye_dist below, rotated."""
    lm = np.zeros((68, 2))
    lm[:] = (0.0, 0.0)
    lm[36] = (-eye_dist / 2, 0)
    lm[45] = (eye_dist / 2, 0)
    lm[37:42] = (-eye_dist / 3, 0)
    lm[42:45] = (eye_dist / 3, 0)
    ring = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    lm[48:68] = np.stack([0.25 * eye_dist * np.cos(ring), 0.6 * eye_dist + 0.1 * eye_dist * np.sin(ring)], 1)
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (lm @ rot.T + (cx, cy)).astype(np.float32)


def test_mouth_crop_is_centred_scaled_and_roll_free():
    lm = face_landmarks(60, 40, 40, angle_deg=0)
    img = np.zeros((128, 128, 3), np.uint8)
    mouth = lm[48:68].mean(0)
    cv2.circle(img, (int(round(mouth[0])), int(round(mouth[1]))), 3, (255, 255, 255), -1)
    crops = mouth_crops(img[None], lm[None], crop=88, smooth=1, normalise=False)
    assert crops.shape == (1, 88, 88)
    ys, xs = np.nonzero(crops[0] > 0.5)
    assert abs(ys.mean() - 43.5) < 1.5 and abs(xs.mean() - 43.5) < 1.5
    # a dot of radius 3 px at eye distance 40 px becomes radius 3 * 96 / 40 = 7.2 px in the 96 px ROI
    assert abs(np.sqrt(len(ys) / np.pi) - 7.2) < 1.0
    # rotating image and landmarks together (head roll) leaves the crop nearly unchanged
    rot = cv2.getRotationMatrix2D((64.0, 64.0), -20, 1.0)
    img2 = cv2.warpAffine(img, rot, (128, 128))
    lm2 = (np.c_[lm, np.ones(68)] @ rot.T).astype(np.float32)
    crops2 = mouth_crops(img2[None], lm2[None], crop=88, smooth=1, normalise=False)
    assert np.abs(crops2 - crops).mean() < 0.02


def test_mouth_crop_normalisation_and_errors():
    grey = np.full((3, 64, 64, 3), round(MEAN * 255), np.uint8)
    lm = np.repeat(face_landmarks(32, 24, 20)[None], 3, 0)
    crops = mouth_crops(grey, lm, crop=44)
    assert crops.shape == (3, 44, 44) and np.abs(crops).max() < 0.5 / 255 / STD * 2
    with pytest.raises(ValueError, match="68, 2"):
        mouth_transforms(np.zeros((3, 20, 2)), 96)
    with pytest.raises(ValueError, match="eye corners"):
        mouth_transforms(np.zeros((3, 68, 2)), 96)
    x, lengths = pad_batch([crops, crops[:2]])
    assert x.shape == (2, 1, 3, 44, 44) and lengths.tolist() == [3, 2] and x[1, 0, 2].abs().sum() == 0


def test_word_frames():
    assert word_frames((0.40, 0.80), 50, margin=2) == (8, 22)
    assert word_frames((0.0, 5.0), 50, margin=2) == (0, 50)
    assert word_frames(None, 29) == (0, 29)
    with pytest.raises(ValueError, match="outside"):
        word_frames((3.0, 4.0), 20, margin=0)


# ------------------------------------------------------------------------------------------ calibration


@pytest.fixture(scope="module")
def synthetic_clips(small_corpus_cfg):
    from data.synthetic.generator import SyntheticConfig, iter_clips

    cfg = SyntheticConfig(**{**small_corpus_cfg, "n_clips": 24, "vocab_size": 4, "test_speakers": 1})
    return list(iter_clips(cfg))


def test_rgb_rois_are_the_metric_crops_before_grey(synthetic_clips):
    clip = synthetic_clips[0]
    grey = mouth_crops(clip.video, clip.landmarks, crop=32, normalise=False)
    rois = mouth_rois(clip.video, clip.landmarks, roi=35)
    centre = cv2.cvtColor(rois.reshape(-1, 35, 3), cv2.COLOR_RGB2GRAY).reshape(len(rois), 35, 35)[:, 1:33, 1:33]
    # warp-then-grey vs grey-then-warp differ by uint8 rounding only
    assert np.abs(centre / 255.0 - grey).max() <= 2.5 / 255


def test_augmentation_is_the_metric_view_when_off_and_varies_when_on(synthetic_clips):
    from metrics.calibration.lipreader import LipreaderAugment, augment_sample, word_samples

    labels = sorted({c.word for c in synthetic_clips})
    s = word_samples(synthetic_clips[:1], labels, 32, every_word=False, rois=True)[0]
    off = LipreaderAugment(scale=0, aspect=0, rotate=0, shift=0, grey=0, gamma=0, speed=0, window=0, flip=0, noise=0)
    plain = augment_sample(s, 32, off, np.random.default_rng(0))
    assert plain.shape == s.crops[s.start : s.end].shape
    assert np.abs(plain - s.crops[s.start : s.end]).max() * STD <= 2.5 / 255
    on = LipreaderAugment()
    views = [augment_sample(s, 32, on, np.random.default_rng(k)) for k in range(6)]
    again = augment_sample(s, 32, on, np.random.default_rng(0))
    assert np.array_equal(views[0], again)  # seeded
    assert len({len(v) for v in views}) > 1  # speed change and window jitter alter the length
    assert all(v.shape[1:] == (32, 32) and np.isfinite(v).all() for v in views)
    n = min(len(v) for v in views)
    assert np.abs(views[0][:n] - views[1][:n]).mean() > 0.05  # appearance differs
    with pytest.raises(ValueError, match="RGB ROIs"):
        augment_sample(
            word_samples(synthetic_clips[:1], labels, 32, every_word=False)[0], 32, on, np.random.default_rng(0)
        )


def test_calibration_config_refuses_unknown_keys():
    from metrics.calibration.lipreader import LipreaderCalibrationConfig

    cfg = LipreaderCalibrationConfig.from_dict({"max_steps": 5, "augment": {"speed": 0.0}})
    assert cfg.max_steps == 5 and cfg.augment.speed == 0.0 and cfg.augment.scale > 0
    with pytest.raises(ValueError, match="max_epochs"):
        LipreaderCalibrationConfig.from_dict({"max_epochs": 5})
    with pytest.raises(ValueError, match="augment.*'zoom'"):
        LipreaderCalibrationConfig.from_dict({"augment": {"zoom": 0.1}})


def test_calibration_learns_on_a_tiny_budget(synthetic_clips):
    from metrics.calibration.lipreader import calibrate_lipreader, corpus_vocabulary

    torch.set_num_threads(1)
    train = [c for c in synthetic_clips if c.split == "train"]
    # a step budget, not a clock one, so the test means the same on a busy machine; light augmentation; no
    # validation clips, so the kept state is the last one
    net, report = calibrate_lipreader(
        train, [], seed=0, max_steps=50, seconds=300, batch_size=8, lr=5e-3, eval_every=25, augment={"scale": 0.05}
    )
    assert report.labels == corpus_vocabulary(train) and net.cfg.labels == tuple(report.labels)
    assert report.n_train >= 12 and report.steps == 50 and report.stop_reason == "max_steps"
    assert [h["step"] for h in report.history] == [25, 50] and report.best_step == 50
    # clear learning: the training words are read far above chance (1 / vocabulary); 0.83-1.0 over seeds 0-2
    assert report.train_acc >= report.chance + 0.35, report.to_dict()


@pytest.mark.slow
def test_calibrated_lipreader_reads_test_words_and_not_frozen_video():
    """Acceptance: >= 80 % word accuracy on GT test clips of the default synthetic corpus, <= chance + 10 % on
    frozen video (the first frame repeated); the default calibration settings with the step budget binding."""
    from omegaconf import OmegaConf

    from data.corpus import SyntheticCorpus
    from metrics.calibration.lipreader import accuracy, calibrate_lipreader, word_samples

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    settings = OmegaConf.to_container(OmegaConf.load(CONFIGS / "metrics" / "default.yaml").lipreader.calibrate)
    corpus = SyntheticCorpus()
    corpus.ensure(progress=False)
    net, report = calibrate_lipreader(
        corpus.clips("train"), corpus.clips("val"), config={**settings, "seconds": 3600}, seed=0
    )
    test = word_samples(corpus.clips("test"), report.labels, net.cfg.crop_size, every_word=False)
    assert accuracy(net, test) >= 0.80, report.to_dict()
    assert accuracy(net, test, frozen=True) <= report.chance + 0.10
