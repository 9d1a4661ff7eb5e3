"""`bench generate`: image / video + any audio -> 25 fps mp4 with audio; face-less frames pass through."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.generate import FrameReader, build_detector, detect_boxes, generate_video, load_generator
from data.io import ffmpeg_exe, probe, read_audio, read_video, write_video, write_wav
from models.facecrop import landmark_boxes, pad_boxes, smooth_boxes
from models.wav2lip.module import Wav2LipConfig, Wav2LipModule


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    d = tmp_path_factory.mktemp("gen")
    spec = make_corpus_spec(SyntheticConfig(n_clips=1, size=96, min_seconds=1.6, max_seconds=1.6, seed=4))
    clip = render_clip(spec, 0)  # 40 frames
    write_video(d / "face.mp4", clip.video)
    cv2.imwrite(str(d / "face.png"), clip.video[0][:, :, ::-1])
    np.save(d / "landmarks.npy", clip.landmarks)
    write_wav(d / "a16.wav", clip.audio)
    # a 44.1 kHz mp3, as users bring
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(d / "a16.wav"), "-ar", "44100", str(d / "a.mp3")],
        check=True,
    )
    return {"dir": d, "video": d / "face.mp4", "image": d / "face.png", "mp3": d / "a.mp3", "lm": d / "landmarks.npy"}


def tiny_module() -> Wav2LipModule:
    torch.manual_seed(0)
    return Wav2LipModule(Wav2LipConfig.preset("tiny", width=0.0625, expert_width=0.0625)).eval()


def test_box_helpers() -> None:
    boxes = np.array([[10, 10, 50, 50], [12, 10, 52, 50], [-1, -1, -1, -1], [20, 20, 60, 60]])
    padded = pad_boxes(boxes, (0, 10, 0, 0), 55, 100)
    assert padded.tolist() == [[10, 10, 50, 60], [12, 10, 52, 60], [-1, -1, -1, -1], [20, 20, 55, 70]]
    smooth = smooth_boxes(boxes, t=5)
    assert smooth[0].tolist() == [11, 10, 51, 50] and smooth[2].tolist() == [-1, -1, -1, -1]  # runs only
    lm = np.zeros((2, 68, 2)) + [[[10, 20]]]
    lm[0, :, 0] += np.linspace(0, 40, 68)
    lm[0, :, 1] += np.linspace(0, 50, 68)
    lm[1] = np.nan
    # the box rule of data.faces.boxes: brows (points 17-26, top at y = 20 + 50 * 17 / 67) raised by a quarter
    # of the brow-to-chin height, 32.69 - 0.25 * (70 - 32.69) = 23.36, rounded outwards
    assert landmark_boxes(lm).tolist() == [[10, 23, 50, 70], [-1, -1, -1, -1]]


def test_image_and_mp3_give_25fps_mp4_with_full_audio(media, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    report = generate_video(tiny_module(), media["image"], media["mp3"], out, detector="full", progress=False)
    info = probe(out)
    n_audio = len(read_audio(media["mp3"]))
    assert info.fps == 25.0 and info.has_audio and report.frames == n_audio // 640 == 40
    assert len(read_video(out)) == 40 and report.no_face == []
    assert abs(len(read_audio(out)) - n_audio) <= 2048  # the muxed audio keeps its length (AAC padding aside)


def test_faceless_frames_pass_through_and_are_reported(media, tmp_path: Path) -> None:
    video = read_video(media["video"])
    lm = np.load(media["lm"])
    blank = list(range(12, 22))  # 10 face-less frames
    video[blank] = 128
    lm[blank] = np.nan
    write_video(tmp_path / "holes.mp4", video)
    np.save(tmp_path / "holes.npy", lm)
    out = tmp_path / "out.mp4"
    # chunks of 8 frames: exercises the streaming path (video read twice, never whole)
    report = generate_video(
        tiny_module(),
        tmp_path / "holes.mp4",
        media["mp3"],
        out,
        detector="landmarks",
        landmarks=str(tmp_path / "holes.npy"),
        chunk_frames=8,
        progress=False,
    )
    assert report.no_face == blank and "10 of 40 frames had no face" in report.summary()
    got = read_video(out).astype(int)
    src = read_video(tmp_path / "holes.mp4").astype(int)
    assert np.abs(got[blank] - src[blank]).mean() < 2.0  # unchanged up to re-encoding
    assert np.abs(got[:12] - src[:12]).mean() > 2.0  # faces were redrawn


def test_dlib_detector_skips_blank_frames(media, tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    from models.facecrop import DlibDetector

    frames = read_video(media["video"])[:4].copy()
    frames[1] = 0
    boxes = DlibDetector()(frames)
    assert boxes[1].tolist() == [-1, -1, -1, -1]


def test_cli_loads_a_run_checkpoint_and_loops_a_short_video(media, tmp_path: Path, capsys) -> None:
    module = tiny_module()
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"state_dict": module.state_dict(), "training_hash": "x"}, run / "model.pt")
    (run / "config.yaml").write_text("run: {preset: tiny}\nmodel: {params: {width: 0.0625, expert_width: 0.0625}}\n")
    loaded = load_generator("wav2lip", run / "model.pt")
    assert all(torch.equal(loaded.net.state_dict()[k], v) for k, v in module.net.state_dict().items())
    short = tmp_path / "short.mp4"
    write_video(short, read_video(media["video"])[:7])
    out = tmp_path / "cli.mp4"
    rc = main(
        ["generate", "--model", "wav2lip", "--face", str(short), "--audio", str(media["mp3"]),
         "--checkpoint", str(run / "model.pt"), "--out", str(out), "--detector", "full"]
    )  # fmt: skip
    assert rc == 0 and "40 frames at 25 fps" in capsys.readouterr().out
    assert len(read_video(out)) == 40
    # the static baseline has no weights to load: a checkpoint for it is a mistake the user hears about
    assert main(["generate", "--model", "static", "--face", str(short), "--audio", str(media["mp3"]),
                 "--checkpoint", str(run / "model.pt"), "--out", str(out)]) == 2  # fmt: skip
    assert "has no weights" in capsys.readouterr().err


def test_feathered_paste_is_the_default_and_hard_pastes_the_box(media, tmp_path: Path) -> None:
    src = read_video(media["video"])[:1].astype(int)
    got = {}
    for paste in (None, "hard"):
        out = tmp_path / f"{paste}.mp4"
        generate_video(tiny_module(), media["image"], media["mp3"], out, detector="full", paste=paste, progress=False)
        got[paste] = read_video(out)[:1].astype(int)
    top = slice(0, 30)  # above the lower face (the mask starts at 40 % of the 96 px box)
    assert np.abs(got[None][:, top] - src[:, top]).mean() < 2.0  # the feathered paste keeps the frame there
    assert np.abs(got["hard"][:, top] - src[:, top]).mean() > 2.0  # the hard paste replaced the whole box
    assert np.abs(got[None][:, 60:90, 20:76] - src[:, 60:90, 20:76]).mean() > 2.0  # the mouth was redrawn


def _prepare_one(tmp_path: Path, frames: np.ndarray, audio: np.ndarray, **prepare) -> tuple[Path, Path, dict]:
    """A one-clip VoxCeleb2-layout corpus prepared with `prepare`: (video, prepared clip folder, manifest entry)."""
    from data.manifest import ManifestIndex
    from data.prepare import PrepareConfig, prepare_corpus

    video = tmp_path / "corpus" / "dev" / "mp4" / "id00001" / "AbCdEfGhIjK" / "00001.mp4"
    write_video(video, frames, audio)
    out = tmp_path / "prepared"
    cfg = PrepareConfig(workers=1, **prepare)
    summary = prepare_corpus("voxceleb2", tmp_path / "corpus", "voxceleb2", out, cfg, progress=False)
    assert summary.accepted == 1, summary.format()
    entry = ManifestIndex.open(out).entry(0)
    return video, out / entry["dir"], entry


def _generate_door(video: Path, det, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The boxes and 96x96 faces `bench generate` cuts from the first n frames (its pass 1, its crop)."""
    from models.facecrop import crop_faces

    reader = FrameReader(video)
    boxes = detect_boxes(reader, det, n, det.pads, chunk_frames=16)
    frames = np.concatenate(list(reader.chunks(64)))[:n]
    return boxes, crop_faces(frames, boxes)


def test_generate_cuts_the_faces_preparation_cut_from_the_same_landmarks(tmp_path: Path) -> None:
    from data.faces import CROPS
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    clip = render_clip(make_corpus_spec(SyntheticConfig(n_clips=1, size=96, min_seconds=1.6, max_seconds=1.6)), 0)
    # a head that drifts (smoothing matters) with the forehead margin above the frame (clipping matters)
    drift = np.cumsum(np.random.default_rng(0).normal(0, 1.5, (clip.num_frames, 1, 2)), axis=0)
    lm = (clip.landmarks + drift - [0.0, 25.0]).astype(np.float32)
    lm_file = tmp_path / "landmarks" / "dev" / "mp4" / "id00001" / "AbCdEfGhIjK" / "00001.npy"
    lm_file.parent.mkdir(parents=True)
    np.save(lm_file, lm)
    video, d, entry = _prepare_one(
        tmp_path, clip.video, clip.audio, landmarks="file", landmarks_dir=str(lm_file.parents[4])
    )
    det = build_detector("landmarks", video, landmarks=str(lm_file))
    assert det.pads == CROPS["wav2lip"].pads  # not Wav2Lip's default_pads: landmark boxes already reach the chin
    boxes, faces = _generate_door(video, det, entry["n_frames"])
    np.testing.assert_array_equal(boxes, CROPS["wav2lip"].boxes(lm, (96, 96)))
    assert (boxes[:, 1] == 0).any() and len({tuple(b) for b in boxes.tolist()}) > 10  # clipped, and moving
    np.testing.assert_array_equal(faces, np.load(d / "crop_wav2lip.npy"))


def test_generate_dlib_boxes_are_those_of_a_corpus_prepared_with_dlib(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("dlib")
    from skimage import data as skdata

    from data.faces import CROPS, fill_gaps
    from data.faces.dlib import FaceModelError, face_models_dir

    try:
        face_models_dir()
    except FaceModelError as err:
        pytest.skip(str(err))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no FAN weights: auto is dlib
    photo = skdata.astronaut()  # a real face, bundled with scikit-image
    frames = np.stack([photo[20 + i % 5 : 276 + i % 5, 100 + 2 * i % 7 : 356 + 2 * i % 7] for i in range(12)])
    audio = (np.random.default_rng(0).normal(0, 0.05, 12 * 640)).astype(np.float32)
    video, d, entry = _prepare_one(tmp_path, frames, audio, landmarks="auto")
    assert entry["landmark_source"] == "dlib"
    lm = np.load(d / "landmarks.npy")
    assert np.isfinite(lm).all()  # dlib found the face in every frame, so both doors box every frame
    boxes, faces = _generate_door(video, build_detector("dlib", video), entry["n_frames"])
    np.testing.assert_array_equal(boxes, CROPS["wav2lip"].boxes(fill_gaps(lm), (256, 256)))
    assert (boxes[:, 2] - boxes[:, 0]).max() < 200  # a face box, not the frame
    np.testing.assert_array_equal(faces, np.load(d / "crop_wav2lip.npy"))
