"""`bench data prepare` on miniature LRW / CREMA-D / VoxCeleb2 trees written by the synthetic generator.

Covers: every layout prepared (real containers, CREMA-D's flv + wav, LRW's txt headers), a second run that
does nothing, each reject reason with a readable message, strict mode, a run killed with SIGKILL and resumed
giving the same manifest, chunked audio features equal to the whole-clip ones, crops and their landmarks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data.audio import psf_mfcc, wav2lip_melspectrogram
from data.clip import SAMPLES_PER_FRAME
from data.io import write_video
from data.manifest import MANIFEST, REJECTS, ManifestIndex, read_jsonl
from data.prepare import (
    CROPS,
    FEATURES,
    NpyWriter,
    PrepareConfig,
    PrepareError,
    forward_mean,
    prepare_corpus,
    transform_points,
)
from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip
from data.synthetic.writer import write_corpus

REPO = Path(__file__).resolve().parents[2]
CFG = SyntheticConfig(seed=7, n_speakers=4, n_clips=6, size=96, min_seconds=1.0, max_seconds=1.3)
TRUTH = dict(landmarks="truth", workers=1)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("raw")
    for layout in ("lrw", "crema", "voxceleb2"):
        write_corpus(CFG, base / layout, layout, workers=1, progress=False)
    return base


@pytest.fixture(scope="module")
def prepared(trees, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    summaries = {
        layout: prepare_corpus(layout, trees / layout, layout, out / layout, PrepareConfig(**TRUTH), progress=False)
        for layout in ("lrw", "crema", "voxceleb2")
    }
    return out, summaries


@pytest.mark.parametrize("layout", ["lrw", "crema", "voxceleb2"])
def test_every_layout_prepares_and_a_second_run_does_nothing(trees, prepared, layout):
    out, summaries = prepared
    s = summaries[layout]
    assert (s.total, s.accepted, s.rejected) == (CFG.n_clips, CFG.n_clips, {})
    if layout == "lrw":
        assert next((trees / layout).glob("*/*/*.txt")).read_text().startswith("Text: ")
    index = ManifestIndex.open(out / layout)
    assert len(index) == CFG.n_clips and index.speaker_overlap() == {}
    e = index.entry(0)
    d = out / layout / e["dir"]
    crop = np.load(d / "crop_wav2lip.npy", mmap_mode="r")
    assert crop.shape == (e["n_frames"], 96, 96, 3) and crop.dtype == np.uint8
    assert np.load(d / "audio.npy").shape == (e["n_frames"] * SAMPLES_PER_FRAME,)
    assert np.load(d / "mel.npy").shape == (1 + e["n_frames"] * SAMPLES_PER_FRAME // 200, 80)
    lm = np.load(d / "landmarks_wav2lip.npy")
    assert lm.shape == (e["n_frames"], 68, 2) and lm.min() > -5 and lm.max() < 101  # fills the crop (smoothed box)

    stamp = (out / layout / MANIFEST).stat().st_mtime_ns
    again = prepare_corpus(layout, trees / layout, layout, out / layout, PrepareConfig(**TRUTH), progress=False)
    assert (again.prepared, again.skipped) == (0, CFG.n_clips)
    assert (out / layout / MANIFEST).stat().st_mtime_ns == stamp


def test_killed_midway_and_resumed_gives_the_same_manifest(trees, prepared, tmp_path):
    out_full, _ = prepared
    out = tmp_path / "killed"
    code = (
        "import sys; from data.prepare import PrepareConfig, prepare_corpus; "
        f"prepare_corpus('crema', {str(trees / 'crema')!r}, 'crema', {str(out)!r}, "
        "PrepareConfig(landmarks='truth', workers=1), progress=False)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((out / "records").glob("**/*.json"))) < 2:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list((out / "records").glob("**/*.json")))
    assert 0 < done < CFG.n_clips, f"the run was not interrupted midway ({done} records)"
    assert not (out / MANIFEST).exists()
    resumed = prepare_corpus("crema", trees / "crema", "crema", out, PrepareConfig(**TRUTH), progress=False)
    assert resumed.skipped == done and resumed.prepared == CFG.n_clips - done
    assert (out / MANIFEST).read_bytes() == (out_full / "crema" / MANIFEST).read_bytes()
    assert not list((out / "clips").glob("**/*.tmp*"))


@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory):
    """A VoxCeleb2-layout tree with one good clip and one clip per reject reason, plus a landmarks folder."""
    root = tmp_path_factory.mktemp("bad")
    lms = root / "landmarks"
    spec = make_corpus_spec(SyntheticConfig(seed=2, n_speakers=4, n_clips=4, size=64, min_seconds=1.0, max_seconds=1.2))
    clip = render_clip(spec, 0)
    t = clip.num_frames

    def put(name, frames, audio, landmarks):
        path = root / "corpus" / "dev" / "mp4" / "id00001" / "AbCdEfGhIjK" / f"{name}.mp4"
        write_video(path, frames, audio)
        cid = path.relative_to(root / "corpus").with_suffix("").as_posix()
        (lms / cid).parent.mkdir(parents=True, exist_ok=True)
        np.save(lms / f"{cid}.npy", landmarks)
        return path

    put("00001", clip.video, clip.audio, clip.landmarks)
    garbage = put("00002", clip.video, clip.audio, clip.landmarks)
    garbage.write_bytes(b"\x00garbage" * 500)
    trunc = put("00003", clip.video, clip.audio, clip.landmarks)
    trunc.write_bytes(trunc.read_bytes()[: trunc.stat().st_size // 2])
    put("00004", clip.video, None, clip.landmarks)
    put("00005", clip.video, clip.audio[: (t - 8) * SAMPLES_PER_FRAME], clip.landmarks)
    put("00006", clip.video[:6], clip.audio[: 6 * SAMPLES_PER_FRAME], clip.landmarks[:6])
    no_face = clip.landmarks.copy()
    no_face[: t // 2] = np.nan
    put("00007", clip.video, clip.audio, no_face)
    return root


def test_bad_clips_are_rejected_with_their_reason_and_counted(bad_tree, tmp_path):
    cfg = PrepareConfig(landmarks="file", landmarks_dir=str(bad_tree / "landmarks"), workers=1)
    s = prepare_corpus("voxceleb2", bad_tree / "corpus", "voxceleb2", tmp_path / "p", cfg, progress=False)
    assert s.accepted == 1
    assert s.rejected == {"corrupt": 2, "no_audio": 1, "av_mismatch": 1, "too_short": 1, "no_face": 1}
    rejects = {r["clip_id"].rsplit("/", 1)[-1]: r for r in read_jsonl(tmp_path / "p" / REJECTS)}
    assert rejects["00002"]["reason"] == rejects["00003"]["reason"] == "corrupt"
    assert "00002.mp4" in rejects["00002"]["message"]
    assert rejects["00004"]["reason"] == "no_audio" and "no audio stream" in rejects["00004"]["message"]
    assert rejects["00005"]["reason"] == "av_mismatch" and "frames" in rejects["00005"]["message"]
    assert rejects["00006"]["reason"] == "too_short"
    assert rejects["00007"]["reason"] == "no_face" and "no face in 48% of 29 frames" in rejects["00007"]["message"]
    assert "corrupt: 2" in s.format()
    with pytest.raises(PrepareError, match="6 clips rejected"):
        prepare_corpus("voxceleb2", bad_tree / "corpus", "voxceleb2", tmp_path / "p", cfg, progress=False, strict=True)


def test_fan_without_weights_is_a_clear_error(tmp_path, monkeypatch, trees):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cfg = PrepareConfig(landmarks="fan", workers=1)
    with pytest.raises(PrepareError, match="torch hub cache.*2DFAN4"):
        prepare_corpus("crema", trees / "crema", "crema", tmp_path / "p", cfg, progress=False)
    with pytest.raises(PrepareError, match="unknown prepare settings"):
        PrepareConfig.from_dict({"landmark": "fan"})


@pytest.mark.parametrize("name,whole", [("mel", lambda a: wav2lip_melspectrogram(a).T), ("mfcc", None)])
def test_chunked_audio_features_equal_the_whole_clip(tmp_path, name, whole):
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(16_000 * 2 + 123) * 0.1).astype(np.float32)
    w = NpyWriter(tmp_path / "a.npy", "<f4", ())
    w.append(audio[:5000])
    w.append(audio[5000:])
    w.close()
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), audio)
    blocks = np.concatenate(list(FEATURES[name].blocks(tmp_path / "a.npy", len(audio), 3_000)))
    ref = whole(audio) if whole else psf_mfcc(audio.astype(np.float64) * 32768.0)
    assert blocks.shape == ref.shape
    np.testing.assert_allclose(blocks, ref, rtol=1e-4, atol=1e-3)


def test_box_smoothing_and_crops():
    boxes = np.random.default_rng(1).normal(size=(9, 4))
    ref = np.stack([boxes[min(i, 9 - 5) : min(i, 9 - 5) + 5].mean(0) for i in range(9)])
    np.testing.assert_allclose(forward_mean(boxes, 5), ref)
    # a face at the top-left corner: the syncnet crop fills outside the frame with 110 (syncnet_python)
    frame = np.full((100, 100, 3), 200, np.uint8)
    lm = np.zeros((1, 68, 2), np.float32)
    lm[0, :, 0] = np.linspace(0, 30, 68)
    lm[0, :, 1] = np.linspace(0, 30, 68)
    crop = CROPS["syncnet"]
    out = crop.apply(frame, crop.transforms(lm)[0])
    assert out.shape == (224, 224, 3) and out[0, 0, 0] == 110 and out[-1, -1, 0] == 200
    # `tracked` is syncnet_python's name for the same crop: one crop, one set of files
    assert CROPS["tracked"] is crop
    cfg = PrepareConfig(crops=["tracked", "syncnet", "vasa"])
    cfg.validate()
    assert cfg.crops == ["syncnet", "vasa"]
    # the vasa crop is the diffused_heads alignment at 256 px: eye midpoint at (128, 104), eyes 68 px apart
    face = np.zeros((3, 68, 2), np.float32) + [[[200.0, 150.0]]]
    face[:, 36:42] = [170.0, 140.0]  # left eye
    face[:, 42:48] = [230.0, 140.0]  # right eye
    eyes = transform_points(face, CROPS["vasa"].transforms(face))
    np.testing.assert_allclose(eyes[:, 36:42].mean(1), [[94.0, 104.0]] * 3, atol=1e-4)
    np.testing.assert_allclose(eyes[:, 42:48].mean(1), [[162.0, 104.0]] * 3, atol=1e-4)
    assert CROPS["vasa"].size == 256 and CROPS["diffused_heads"].size == 128


def test_the_split_file_override_is_recorded_and_checked(trees, prepared, tmp_path):
    from data.prepare import check_prepared

    out, _ = prepared
    assert check_prepared(out / "lrw") == []
    root = tmp_path / "lrw"
    shutil.copytree(trees / "lrw", root)
    p = prepare_corpus("lrw", root, "lrw", tmp_path / "p", PrepareConfig(**TRUTH), progress=False)
    assert p.accepted == CFG.n_clips
    test_txt = root / "splits" / "test.txt"
    test_txt.write_text(test_txt.read_text().splitlines()[0] + "\n")
    assert any("split files changed" in msg for msg in check_prepared(tmp_path / "p"))


def _count_truth_reads(monkeypatch) -> list[str]:
    """Record every clip whose landmarks the truth source reads (workers=1: in this process)."""
    from data.faces.sources import TruthSource

    calls: list[str] = []
    original = TruthSource.known
    monkeypatch.setattr(TruthSource, "known", lambda self, ref: calls.append(ref.clip_id) or original(self, ref))
    return calls


def test_an_added_crop_is_cut_from_cached_landmarks(trees, tmp_path, monkeypatch):
    import json

    calls = _count_truth_reads(monkeypatch)
    out = tmp_path / "p"
    first = prepare_corpus("crema", trees / "crema", "crema", out, PrepareConfig(**TRUTH), progress=False)
    assert first.prepared == CFG.n_clips and len(calls) == CFG.n_clips
    assert "landmarks: 6 detected, 0 from cache" in first.format()
    index = ManifestIndex.open(out)
    d = out / index.entry(0)["dir"]
    stamp = (d / "crop_wav2lip.npy").stat().st_mtime_ns

    more = PrepareConfig(**TRUTH, crops=["wav2lip", "diffused_heads"], features=["mel", "mfcc"])
    again = prepare_corpus("crema", trees / "crema", "crema", out, more, progress=False)
    assert len(calls) == CFG.n_clips  # no landmark source was asked again
    assert (again.prepared, again.extended, again.skipped) == (0, CFG.n_clips, 0)
    assert again.crops_added == {"diffused_heads": CFG.n_clips}
    text = again.format()
    assert "landmarks: 0 detected, 6 from cache" in text and "crops added: diffused_heads x 6, mfcc x 6" in text
    e = ManifestIndex.open(out).entry(0)
    assert e["crops"] == {"wav2lip": 96, "diffused_heads": 128} and set(e["features"]) == {"mel", "mfcc"}
    assert (d / "crop_wav2lip.npy").stat().st_mtime_ns == stamp  # the finished crop was left alone
    info = json.loads((out / "prepared.json").read_text())
    assert info["crops"] == ["diffused_heads", "wav2lip"] and info["landmark_sources"] == {"truth": CFG.n_clips}
    assert e["landmark_source"] == "truth"

    # the crop cut from the cache is the one a fresh preparation cuts
    fresh = tmp_path / "fresh"
    only = PrepareConfig(**TRUTH, crops=["diffused_heads"], features=["mfcc"])
    prepare_corpus("crema", trees / "crema", "crema", fresh, only, progress=False)
    for name in ("crop_diffused_heads.npy", "landmarks_diffused_heads.npy", "mfcc.npy"):
        np.testing.assert_array_equal(np.load(d / name), np.load(fresh / e["dir"] / name))
    assert check_prepared_ok(out)

    # landmark settings decide re-detection: another source (the same landmarks, from files) redoes every clip
    lm_dir = tmp_path / "lm"
    index = ManifestIndex.open(out)
    for entry in index.entries(range(len(index))):
        (lm_dir / entry["clip_id"]).parent.mkdir(parents=True, exist_ok=True)
        np.save(lm_dir / f"{entry['clip_id']}.npy", np.load(out / entry["dir"] / "landmarks.npy"))
    from_files = PrepareConfig(landmarks="file", landmarks_dir=str(lm_dir), workers=1)
    redo = prepare_corpus("crema", trees / "crema", "crema", out, from_files, progress=False)
    assert redo.prepared == CFG.n_clips and redo.landmark_sources == {"file": CFG.n_clips}


def check_prepared_ok(out) -> bool:
    from data.prepare import check_prepared

    problems = check_prepared(out)
    assert problems == []
    return True


def test_auto_landmarks_and_device(tmp_path, monkeypatch):
    import torch

    from data.faces import resolve_device, resolve_source
    from data.faces.sources import fan_weight_files

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    video = tmp_path / "clip.mp4"
    assert resolve_source("auto", video) == "dlib"  # no sidecar, no FAN weights: the detector that needs nothing
    for f in fan_weight_files():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
    assert resolve_source("auto", video) == "fan"
    (tmp_path / "clip.truth.npz").touch()
    assert resolve_source("auto", video) == "truth" and resolve_source("dlib", video) == "dlib"
    assert PrepareConfig().landmarks == "auto" and PrepareConfig().device == "auto"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_preparing_in_this_process_leaves_its_threads_alone(trees, tmp_path):
    """`bench run` prepares a missing corpus in its own process, then trains: preparation must not leave it with
    the one thread a pool worker gets (training on one of the machine's cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        prepare_corpus("crema", trees / "crema", "crema", tmp_path / "p", PrepareConfig(**TRUTH), progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
