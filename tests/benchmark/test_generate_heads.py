"""`bench generate` for the head models (Diffused Heads, VASA-style, static): their own crop of a photo, an mp4
as long as the audio, the head pasted back through the inverse alignment, faces picked by index, the synthetic
checkpoint warning, and VASA streaming with its first-frame latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.generate import generate_video, synthetic_warning
from benchmark.generate_heads import head_transform
from data.faces.crops import CROPS, invert_affine
from data.io import MediaError, probe, read_video, write_wav
from models.facecrop import feather_mask, paste_aligned, paste_faces

N_FRAMES = 12


def _astronaut() -> np.ndarray:
    from skimage import data as skdata

    return skdata.astronaut()  # a real face, bundled with scikit-image


def _need_dlib() -> None:
    pytest.importorskip("dlib")
    from data.faces.dlib import FaceModelError, face_models_dir

    try:
        face_models_dir()
    except FaceModelError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("heads")
    rng = np.random.default_rng(0)
    write_wav(d / "speech.wav", (rng.normal(0, 0.1, N_FRAMES * 640 + 300)).astype(np.float32))
    cv2.imwrite(str(d / "astronaut.png"), _astronaut()[:, :, ::-1])
    cv2.imwrite(str(d / "blank.png"), np.full((200, 200, 3), 128, np.uint8))
    return {"dir": d, "audio": d / "speech.wav", "photo": d / "astronaut.png", "blank": d / "blank.png"}


def _tiny_run(root: Path, model: str) -> Path:
    """A run folder as `bench run ... run.train=false` leaves it: config.yaml (synthetic corpus) + model.pt."""
    from omegaconf import OmegaConf

    from benchmark.config import compose
    from benchmark.train import build_untrained

    run = root / "synthetic" / model
    run.mkdir(parents=True)
    cfg = compose(model, "synthetic", "tiny")
    torch.manual_seed(0)
    module = build_untrained(cfg)
    OmegaConf.save(cfg, run / "config.yaml")
    torch.save({"state_dict": module.state_dict(), "training_hash": "x"}, run / "model.pt")
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    _tiny_run(root, "vasa")
    _tiny_run(root, "diffused_heads")
    return root


def _eye_landmarks(mid: tuple[float, float], dist: float, angle: float) -> np.ndarray:
    """[1, 68, 2] landmarks whose eyes (36-41, 42-47) sit `dist` apart around `mid`, the eye line at `angle`."""
    lm = np.zeros((1, 68, 2))
    d = np.array([np.cos(angle), np.sin(angle)]) * dist / 2
    lm[0, 36:42], lm[0, 42:48] = np.array(mid) - d, np.array(mid) + d
    return lm


# ----------------------------------------------------------------------------------------------- paste


def test_feather_mask_is_soft_and_hard_paste_is_the_box() -> None:
    mask = feather_mask(40, 30, top=0.4)
    assert mask[:16].max() == 0.0 and mask[30, 15] == 1.0  # nothing above the lower face; 1 inside
    border = np.concatenate([mask[16, 1:-1], mask[-1, 1:-1], mask[17:, 0], mask[17:, -1]])
    assert ((border > 0) & (border < 1)).all()  # every pixel on the region's edge is blended, none replaced
    frames = np.zeros((1, 60, 60, 3), np.uint8)
    face = np.full((1, 20, 20, 3), 200, np.uint8)
    box = np.array([[10, 20, 40, 50]])  # 30 x 30: the face is resized to it
    hard = paste_faces(frames, box, face, "hard")[0, :, :, 0]
    inside = np.zeros((60, 60), bool)
    inside[20:50, 10:40] = True
    assert (hard[inside] == 200).all() and (hard[~inside] == 0).all()  # a hard-edged rectangle
    soft = paste_faces(frames, box, face, "feather")[0, :, :, 0]
    assert (soft[~inside] == 0).all() and (soft[20:30, 10:40] == 0).all()  # the upper face is the frame's
    assert 0 < soft[49, 25] < 200 and 0 < soft[40, 10] < 200 and soft[42, 25] == 200  # soft edges, full centre


def test_inverse_alignment_puts_an_unchanged_head_back_where_it_was() -> None:
    frame = cv2.GaussianBlur(_astronaut(), (0, 0), 2.0)  # resampled twice: keep detail above a pixel's scale
    crop = CROPS["vasa"]
    m = crop.transforms(_eye_landmarks((225.0, 103.0), 40.0, 0.15), (512, 512))[0]
    np.testing.assert_allclose(invert_affine(m) @ np.append(m @ [225.0, 103.0, 1.0], 1.0), [225.0, 103.0])
    head = crop.apply(frame, m)
    (out,) = paste_aligned(frame, head[None], m)
    # where the head's mask is 1 (away from its edge) the frame is the original again, and outside it untouched
    s = crop.size
    inner = np.zeros((s, s), np.float32)
    inner[s // 5 : -s // 5, s // 5 : -s // 5] = 1.0
    inside = cv2.warpAffine(inner, invert_affine(m), (512, 512)) > 0.99
    outside = cv2.warpAffine(np.ones((s, s), np.float32), invert_affine(m), (512, 512)) == 0
    diff = np.abs(out.astype(int) - frame.astype(int)).max(-1)
    assert inside[103, 225] and inside.sum() > 5000
    assert np.median(diff[inside]) <= 2 and np.percentile(diff[inside], 99) <= 8
    assert (diff[outside] == 0).all()


# ----------------------------------------------------------------------------------------------- faces


def test_face_index_picks_the_requested_face(media, tmp_path: Path) -> None:
    _need_dlib()
    from types import SimpleNamespace

    face = _astronaut()[0:300, 100:350]
    small = cv2.resize(face, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    two = np.full((300, 500, 3), 230, np.uint8)
    two[:, :250] = face  # the larger face on the left
    two[20 : 20 + small.shape[0], 260 : 260 + small.shape[1]] = small
    path = tmp_path / "two.png"
    cv2.imwrite(str(path), two[:, :, ::-1])
    head = SimpleNamespace(crop="vasa")
    eye_x = []
    for k in (0, 1):
        m = head_transform(head, two, path, detector="dlib", face_index=k)  # type: ignore[arg-type]
        assert m is not None
        eye_x.append(invert_affine(m) @ [128.0, 104.0, 1.0])  # the crop's eye midpoint in the photo
    assert eye_x[0][0] < 250 < eye_x[1][0]
    with pytest.raises(MediaError, match="two.png.*face 3 .* has 2"):
        head_transform(head, two, path, detector="dlib", face_index=2)  # type: ignore[arg-type]


def test_a_photo_without_a_face_is_an_error_naming_it(media, runs, tmp_path: Path, capsys) -> None:
    _need_dlib()
    for model in ("vasa", "static"):
        ckpt = ["--checkpoint", str(runs / "synthetic" / model)] if model != "static" else []
        rc = main(["generate", "--model", model, "--face", str(media["blank"]), "--audio", str(media["audio"]),
                   "--out", str(tmp_path / f"{model}.mp4"), *ckpt])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 2 and "blank.png: no face found in the image" in err
        assert not (tmp_path / f"{model}.mp4").exists()


# ----------------------------------------------------------------------------------------------- generation


def test_head_models_write_the_crop_as_long_as_the_audio_and_warn_on_real_photos(media, runs, capsys) -> None:
    _need_dlib()
    for model, size in (("diffused_heads", 128), ("vasa", 256)):
        out = media["dir"] / f"{model}.mp4"
        rc = main(["generate", "--model", model, "--face", str(media["photo"]), "--audio", str(media["audio"]),
                   "--checkpoint", model, "--runs", str(runs), "--out", str(out), "sample_steps=2"])  # fmt: skip
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        assert "trained on the synthetic corpus: its faces are drawn cartoons" in captured.err
        info = probe(out)
        assert info.has_audio and (info.width, info.height) == (size, size)
        assert abs(len(read_video(out)) - N_FRAMES) <= 1
    # a face from the synthetic corpus itself (its truth sidecar beside it) is what the weights know: no warning
    clip = media["dir"] / "clip.mp4"
    clip.with_name("clip.truth.npz").write_bytes(b"")
    assert synthetic_warning(runs / "synthetic" / "vasa" / "model.pt", clip) is None


def test_vasa_streams_with_a_latency_split_and_pastes_into_the_photo(media, runs) -> None:
    from benchmark.generate import load_generator

    module = load_generator("vasa", runs / "synthetic" / "vasa", params={"sample_steps": 2}, device="cpu")
    lm = media["dir"] / "astronaut_lm.npy"
    np.save(lm, _eye_landmarks((225.0, 103.0), 40.0, 0.0).astype(np.float32))
    kw: dict[str, Any] = {"detector": "landmarks", "landmarks": str(lm), "progress": False}
    whole = generate_video(module, media["photo"], media["audio"], media["dir"] / "whole.mp4", **kw)
    k = module.cfg.context
    streamed = generate_video(
        module, media["photo"], media["audio"], media["dir"] / "s.mp4", stream=True, first_window=k, paste="feather",
        **kw,
    )  # fmt: skip
    assert whole.latency is None and whole.frames == streamed.frames == N_FRAMES
    assert len(read_video(media["dir"] / "s.mp4")) == len(read_video(media["dir"] / "whole.mp4"))
    lat = streamed.latency
    assert lat is not None and lat.first_window == k and lat.algorithmic_s == pytest.approx(k / 25)
    assert lat.compute_s > 0 and lat.sustained_fps > 0 and "algorithmic" in streamed.summary()
    assert probe(media["dir"] / "s.mp4").width == 512  # pasted back into the photo
    with pytest.raises(ValueError, match="first window"):
        generate_video(module, media["photo"], media["audio"], media["dir"] / "x.mp4", stream=True,
                       first_window=k - 1, **kw)  # fmt: skip


def test_a_smaller_first_window_starts_the_window_chain_earlier() -> None:
    from models.vasa.motion_dit import MotionDiT
    from models.vasa.process import CosineSchedule, iter_motion_windows

    torch.manual_seed(0)
    net = MotionDiT(5, 7, window=6, context=2, d_model=16, layers=1, heads=2, dropout=0.0).eval()

    def sizes(first: int | None) -> list[int]:
        wins = iter_motion_windows(
            net, CosineSchedule(100), torch.randn(1, 15, 7), torch.zeros(1, 2), torch.zeros(1, 1), None, steps=2,
            scales={"audio": 0.5}, generator=torch.Generator().manual_seed(0), first_window=first,
        )  # fmt: skip
        return [w.shape[1] for w in wins]

    assert sizes(None) == sizes(6) == [6, 6, 3] and sizes(2) == [2, 6, 6, 1]
    with pytest.raises(ValueError, match="between the context"):
        sizes(1)
