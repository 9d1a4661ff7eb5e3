"""SyncNet paper mode = the official scripts' numbers for the same mp4 file.

The reference here is written from the official scripts' steps (syncnet_python SyncNetInstance.evaluate at
6efbb1c, Wav2Lip evaluation/scores_LSE/SyncNetInstance_calc_scores.py), not from the suite: its own ffmpeg
subprocesses, glob + sort + cv2.imread, cv2.resize to 224, scipy's wavfile, python_speech_features.mfcc, the
batch loop, calc_pdist and offset / conf / minval. Nothing from metrics.functional.sync is used on that side.

The evaluator is syncnet_python's S with fan-in-scaled (kaiming) weights and BatchNorm statistics measured on
real windows, so its embeddings follow the input (checked): a parity test with weights that ignore the input
would pass whatever the frames and audio were. Its heads are then centred and the audio head shrunk
(`kaiming_evaluator`), so that offsets follow the content instead of sitting at +-15 on every clip.
"""

from __future__ import annotations

import glob
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import python_speech_features
import torch
import torch.nn.functional as F
from scipy.io import wavfile
from torch import nn

from data.clip import SAMPLES_PER_FRAME
from data.io import ffmpeg_exe, read_video, write_video
from metrics.backbones.syncnet import build_sync_evaluator
from metrics.base import EvalSample
from metrics.functional.sync import sync_scores
from metrics.sync import SyncNetScores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_sync import _BinaryPatternEvaluator  # noqa: E402  (the hand-built known-answer evaluator)

TOL = 1e-4
SHIFTS = (0, 3, -3)


# ------------------------------------------------------------------------------ the official steps, by hand


@dataclass
class Official:
    offset: int
    conf: float
    minval: float
    mdist: np.ndarray


def official_inputs(videofile: Path, tmp: str) -> tuple[list[np.ndarray], int, np.ndarray]:
    """The two ffmpeg commands of the scripts, and their outputs read back as the scripts read them."""
    ffmpeg = ffmpeg_exe()  # only the binary's path: the same build the suite runs
    frames_cmd = [ffmpeg, "-y", "-i", str(videofile), "-threads", "1", "-f", "image2", os.path.join(tmp, "%06d.jpg")]
    audio_cmd = [ffmpeg, "-y", "-i", str(videofile), "-async", "1", "-ac", "1", "-vn", "-acodec", "pcm_s16le"]
    audio_cmd += ["-ar", "16000", os.path.join(tmp, "audio.wav")]
    subprocess.run(frames_cmd, capture_output=True, check=True)
    subprocess.run(audio_cmd, capture_output=True, check=True)
    flist = glob.glob(os.path.join(tmp, "*.jpg"))
    flist.sort()
    images = [cv2.resize(cv2.imread(fname), (224, 224)) for fname in flist]
    sample_rate, audio = wavfile.read(os.path.join(tmp, "audio.wav"))
    return images, sample_rate, audio


def official_pdist(feat1: torch.Tensor, feat2: torch.Tensor, vshift: int) -> list[torch.Tensor]:
    win_size = vshift * 2 + 1
    feat2p = F.pad(feat2, (0, 0, vshift, vshift))
    dists = []
    for i in range(0, len(feat1)):
        dists.append(F.pairwise_distance(feat1[[i], :].repeat(win_size, 1), feat2p[i : i + win_size, :]))
    return dists


@torch.inference_mode()
def official_evaluate(net: nn.Module, videofile: Path, vshift: int = 15, batch_size: int = 20) -> Official:
    with tempfile.TemporaryDirectory() as tmp:
        images, sample_rate, audio = official_inputs(videofile, tmp)
    im = np.stack(images, axis=3)
    im = np.expand_dims(im, axis=0)
    im = np.transpose(im, (0, 3, 4, 1, 2))
    imtv = torch.from_numpy(im.astype(float)).float()
    mfcc = zip(*python_speech_features.mfcc(audio, sample_rate))
    mfcc = np.stack([np.array(i) for i in mfcc])
    cc = np.expand_dims(np.expand_dims(mfcc, axis=0), axis=0)
    cct = torch.from_numpy(cc.astype(float)).float()
    min_length = min(len(images), math.floor(len(audio) / 640))
    lastframe = min_length - 5
    im_feat, cc_feat = [], []
    for i in range(0, lastframe, batch_size):
        im_batch = [imtv[:, :, vframe : vframe + 5, :, :] for vframe in range(i, min(lastframe, i + batch_size))]
        im_feat.append(net.forward_lip(torch.cat(im_batch, 0)).cpu())
        cc_batch = [cct[:, :, :, vframe * 4 : vframe * 4 + 20] for vframe in range(i, min(lastframe, i + batch_size))]
        cc_feat.append(net.forward_aud(torch.cat(cc_batch, 0)).cpu())
    dists = official_pdist(torch.cat(im_feat, 0), torch.cat(cc_feat, 0), vshift=vshift)
    mdist = torch.mean(torch.stack(dists, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    offset = vshift - int(minidx)
    conf = torch.median(mdist) - minval
    return Official(offset, float(conf), float(minval), mdist.numpy())


# ------------------------------------------------------------------------------ evaluator and clips


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-stable conv results on a shared machine
    yield
    torch.set_num_threads(before)


def _clips(n: int, size: int = 96, seed: int = 11) -> list:
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    cfg = SyntheticConfig(seed=seed, n_clips=max(n, 4), size=size, min_seconds=1.0, max_seconds=1.2)
    spec = make_corpus_spec(cfg)
    return [render_clip(spec, i) for i in range(n)]


def _advance(audio: np.ndarray, k: int) -> np.ndarray:
    # k > 0: the sound of frame v is heard at frame v - k (syncnet_python reads offset +k)
    n = abs(k) * SAMPLES_PER_FRAME
    if k >= 0:
        return np.concatenate([audio[n:], np.zeros(n, audio.dtype)])
    return np.concatenate([np.zeros(n, audio.dtype), audio[: audio.size - n]])


def _lip_windows(video_rgb: np.ndarray, count: int) -> torch.Tensor:
    frames = np.stack([cv2.resize(f[..., ::-1], (224, 224)) for f in video_rgb[: count + 4]]).astype(np.float32)
    x = torch.from_numpy(frames).permute(3, 0, 1, 2)  # (3, T, H, W)
    return torch.stack([x[:, v : v + 5] for v in range(count)])


def _aud_windows(audio: np.ndarray, count: int) -> torch.Tensor:
    mfcc = python_speech_features.mfcc(np.round(audio * 32767.0).astype(np.int16), 16000).T
    cc = torch.from_numpy(mfcc.astype(np.float32))
    return torch.stack([cc[None, :, 4 * v : 4 * v + 20] for v in range(count)])


@pytest.fixture(scope="module")
def clips() -> list:
    return _clips(2)


@pytest.fixture(scope="module")
def evaluator(clips) -> nn.Module:
    return kaiming_evaluator(clips)


def kaiming_evaluator(clips: list, audio_scale: float = 0.1) -> nn.Module:
    """S with kaiming weights; BatchNorm running statistics measured in train mode on real windows.

    Then both heads' outputs are centred on those windows and the audio head scaled by `audio_scale`. Why: an
    untrained S puts unrelated lip and audio embeddings at distance ~sqrt(|v|^2 + |a|^2), more than the |v| to
    calc_pdist's zero-padded audio rows, so every clip's argmin sits at +-15 (the most padding) and offset parity
    would hold trivially. With small centred audio embeddings the distance is about |v| - v.a / |v|: the argmin
    follows which audio window correlates with which lip window, i.e. the clip's content.
    """
    torch.manual_seed(0)
    net = build_sync_evaluator("syncnet_v2")
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    lips = [_lip_windows(clip.video, 12) for clip in clips]
    auds = [_aud_windows(audio, 12) for clip in clips for audio in (clip.audio, _advance(clip.audio, 3))]
    with torch.no_grad():
        net.train()
        for lip in lips:
            net.forward_lip(lip)
        for aud in auds:
            net.forward_aud(aud)
        net.eval()
        lip_mean = torch.cat([net.forward_lip(lip) for lip in lips]).mean(0)
        aud_mean = torch.cat([net.forward_aud(aud) for aud in auds]).mean(0)
        net.netfclip[3].bias -= lip_mean
        net.netfcaud[3].bias -= aud_mean
        net.netfcaud[3].weight *= audio_scale
        net.netfcaud[3].bias *= audio_scale
    return net


def test_embeddings_follow_the_input(evaluator, clips):
    """Different windows give materially different embeddings (tiny-std weights would give one vector)."""
    with torch.inference_mode():
        lip = evaluator.forward_lip(_lip_windows(clips[0].video, 10))
        aud = evaluator.forward_aud(_aud_windows(clips[0].audio, 10))
    for emb in (lip, aud):
        spread = torch.cdist(emb, emb)[~torch.eye(len(emb), dtype=torch.bool)]
        scale = emb.norm(dim=1).mean()
        assert float(spread.min()) > 0.05 * float(scale), (float(spread.min()), float(scale))
        assert float(spread.mean()) > 0.2 * float(scale), (float(spread.mean()), float(scale))


def _paper(evaluator: nn.Module, **kwargs) -> SyncNetScores:
    return SyncNetScores(evaluator, mode="paper", weights_name="kaiming-test", weights_sha256="0" * 64, **kwargs)


def _suite(metric: SyncNetScores, sample: EvalSample) -> tuple[int, float, float]:
    offset, conf, min_dist, lse_c = metric.score_clip(sample)
    assert conf == lse_c
    return int(offset), conf, min_dist


def _inputs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from metrics.functional.sync_files import extract_official

    got = extract_official(path)
    return got.frames_rgb(), got.audio_float()


def _assert_same(ours: tuple[int, float, float], ref: Official) -> None:
    assert ours[0] == ref.offset
    assert abs(ours[1] - ref.conf) <= TOL and abs(ours[2] - ref.minval) <= TOL, (ours, ref)


def test_paper_mode_equals_official_on_files(evaluator, clips, tmp_path):
    """Shifted-audio mp4s: the suite's paper mode (a sample carrying fake_file) gives the official numbers."""
    metric = _paper(evaluator)
    confs: list[float] = []
    offsets: list[int] = []
    cases = [(clips[0], k) for k in SHIFTS] + [(clips[1], 0)]
    for c, (clip, k) in enumerate(cases):
        path = tmp_path / f"{clip.clip_id}_{k}.mp4"
        write_video(path, clip.video, _advance(clip.audio, k))
        ref = official_evaluate(evaluator, path)
        # fake / audio deliberately not the file's: paper mode must read the file
        fake = clip.video[:, ::2, ::2]
        sample = EvalSample(index=c, clip_id=clip.clip_id, fake=fake, audio=clip.audio, fake_file=path)
        _assert_same(_suite(metric, sample), ref)
        if c == 0:  # every one of the 31 mean distances, not only the argmin and median
            np.testing.assert_allclose(sync_scores(evaluator, *_inputs(path)).mdist, ref.mdist, rtol=0, atol=TOL)
        confs.append(ref.conf)
        offsets.append(ref.offset)
        assert ref.conf > 100 * TOL  # the 31 shifts are told apart by far more than the tolerance
    assert len({round(c, 4) for c in confs}) == len(confs)  # every file scores differently
    assert any(abs(o) < 15 for o in offsets), offsets  # not every argmin pinned to the padded ends
    info = metric.evaluator_info
    assert info["mode"] == "paper" and info["audio"] == "file" and info["ffmpeg"].startswith("ffmpeg version")


def test_values_depend_on_the_file_not_the_corpus_size(evaluator, tmp_path):
    """The same video written at 224 px and at 128 px: each file scores as the official script scores it."""
    clip = _clips(1, size=224, seed=12)[0]
    small = np.stack([cv2.resize(f, (128, 128), interpolation=cv2.INTER_AREA) for f in clip.video])
    metric = _paper(evaluator)
    results = []
    for name, video in (("v224", clip.video), ("v128", small)):
        path = tmp_path / f"{name}.mp4"
        write_video(path, video, clip.audio)
        ref = official_evaluate(evaluator, path)
        ours = _suite(metric, EvalSample(index=0, clip_id=name, fake=clip.video, audio=clip.audio, fake_file=path))
        _assert_same(ours, ref)
        results.append(ours)
    assert abs(results[0][1] - results[1][1]) > 10 * TOL  # the files differ, and so do their scores


def test_gt_clip_without_file_takes_the_generated_clips_path(evaluator, clips, tmp_path):
    """A sample without a file (the GT row) is scored as its write_video mp4 would be by the official script."""
    clip = clips[1]
    path = tmp_path / "gt.mp4"
    write_video(path, clip.video, clip.audio)
    ref = official_evaluate(evaluator, path)
    ours = _suite(_paper(evaluator), EvalSample(index=0, clip_id=clip.clip_id, fake=clip.video, audio=clip.audio))
    _assert_same(ours, ref)


def test_suite_inputs_are_the_official_inputs(clips, tmp_path):
    """cv2.imread's BGR frames and the wav's int16 samples come back bit-exact through the suite's file steps."""
    from metrics.functional.sync_files import extract_official

    clip = clips[0]
    path = tmp_path / "c.mp4"
    write_video(path, clip.video, clip.audio)
    got = extract_official(path)
    with tempfile.TemporaryDirectory() as tmp:
        _, _, audio = official_inputs(path, tmp)
        images = [cv2.imread(f) for f in sorted(glob.glob(f"{tmp}/*.jpg"))]  # before the script's resize
    assert got.frames_bgr is not None and got.audio is not None
    np.testing.assert_array_equal(got.frames_bgr, np.stack(images))
    np.testing.assert_array_equal(got.audio, audio)
    np.testing.assert_array_equal(got.frames_rgb()[..., ::-1], got.frames_bgr)
    np.testing.assert_array_equal((got.audio_float().astype(np.float64) * 32768.0).astype(np.int16), audio)
    # the JPEG round trip is lossy: paper and standard see different pixels
    assert not np.array_equal(got.frames_rgb(), read_video(path))


# ------------------------------------------------------------------------------ audio: file | reference


# one bit per frame from brightness and from MFCC c0 (log energy), so offsets are known exactly
_BitEvaluator = _BinaryPatternEvaluator


def _bit_clip(frames: int = 75, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, frames)
    video = np.broadcast_to(np.where(bits[:, None, None, None] == 1, 200, 50).astype(np.uint8), (frames, 64, 64, 3))
    gain = np.repeat(np.where(bits == 1, 0.5, 0.005), SAMPLES_PER_FRAME)
    audio = (rng.uniform(-1, 1, frames * SAMPLES_PER_FRAME) * gain).astype(np.float32)
    c0 = python_speech_features.mfcc(np.round(audio * 32767.0), 16000)[:, 0]  # log frame energy
    return video.copy(), audio, float((c0.max() + c0.min()) / 2)


@pytest.mark.parametrize("mode", ["paper", "standard"])
def test_audio_file_hears_the_files_track_reference_does_not(mode, tmp_path):
    video, audio, threshold = _bit_clip()
    net = _BitEvaluator(threshold)
    path = tmp_path / "advanced.mp4"
    write_video(path, video, _advance(audio, 3))  # the file's track leads its video by 3 frames
    fake = read_video(path)
    sample = EvalSample(index=0, clip_id="advanced", fake=fake, audio=audio, fake_file=path)
    scores = {}
    for source in ("file", "reference"):
        metric = SyncNetScores(net, mode=mode, audio=source, vshift=6, weights_name="bits")
        scores[source] = _suite(metric, sample)
        assert metric.evaluator_info["audio"] == source and metric.evaluator_info["mode"] == mode
    assert scores["reference"][0] == 0 and scores["file"][0] == 3
    # a GT sample (no file) under `file` is heard with its own track
    gt = SyncNetScores(net, mode=mode, audio="file", vshift=6, weights_name="bits")
    assert _suite(gt, EvalSample(index=1, clip_id="gt", fake=fake, audio=_advance(audio, -2)))[0] == -2


@pytest.mark.parametrize("mode", ["paper", "standard"])
def test_file_without_audio_track_is_a_counted_failure(mode, tmp_path):
    video, audio, threshold = _bit_clip(frames=30)
    silent = tmp_path / "no_track.mp4"
    write_video(silent, video, None)
    missing = tmp_path / "missing.mp4"
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    metric = SyncNetScores(_BitEvaluator(threshold), mode=mode, audio="file", vshift=3, weights_name="bits")
    metric.update(
        [
            EvalSample(index=0, clip_id="no_track", fake=video, audio=audio, fake_file=silent),
            EvalSample(index=1, clip_id="missing", fake=video, audio=audio, fake_file=missing),
            EvalSample(index=2, clip_id="corrupt", fake=video, audio=audio, fake_file=corrupt),
        ]
    )
    assert int(metric.n_failed) == 3 and metric.per_clip()[0].numel() == 0
    reasons = dict(metric.failures)
    assert str(silent) in reasons["no_track"] and "no audio track" in reasons["no_track"]
    assert str(missing) in reasons["missing"] and "does not exist" in reasons["missing"]
    assert str(corrupt) in reasons["corrupt"]
    # under `reference` the file's missing track does not matter (paper mode still reads its frames)
    ref = SyncNetScores(_BitEvaluator(threshold), mode=mode, audio="reference", vshift=3, weights_name="bits")
    ref.update([EvalSample(index=0, clip_id="no_track", fake=video, audio=audio, fake_file=silent)])
    assert int(ref.n_failed) == 0 and ref.per_clip()[0].tolist() == [0]


def test_settings_are_checked_and_the_protocols_use_paper_mode():
    from benchmark.config import compose

    net = _BitEvaluator(0.0)
    with pytest.raises(ValueError, match="valid: paper, standard"):
        SyncNetScores(net, mode="official")
    with pytest.raises(ValueError, match="valid: file, reference"):
        SyncNetScores(net, audio="corpus")
    assert SyncNetScores(net).evaluator_info["mode"] == "standard"
    assert "ffmpeg" not in SyncNetScores(net).evaluator_info
    default = compose(None, "synthetic").metrics.sync
    assert default.mode == "standard" and default.audio == "file"
    for dataset in ("synthetic", "crema", "lrw"):
        sync = compose(None, dataset, protocol=f"dh_table1_{dataset}").metrics.sync
        assert sync.mode == "paper" and sync.audio == "file", dataset


# ------------------------------------------------------------------------------ 30 clips (slow)


@pytest.mark.slow
def test_paper_mode_equals_official_on_30_clips(evaluator, tmp_path):
    """Parity on 30 clips of another seed, shifts 0 / +3 / -3 rotating; paper vs standard differences printed."""
    metric = _paper(evaluator)
    standard = SyncNetScores(evaluator, mode="standard", weights_name="kaiming-test")
    moved, max_conf = 0, 0.0
    for i, clip in enumerate(_clips(30, seed=21)):
        k = SHIFTS[i % 3]
        path = tmp_path / f"{i}.mp4"
        write_video(path, clip.video, _advance(clip.audio, k))
        ref = official_evaluate(evaluator, path)
        _assert_same(_suite(metric, EvalSample(index=i, clip_id=clip.clip_id, fake=clip.video, fake_file=path)), ref)
        std = _suite(standard, EvalSample(index=i, clip_id=clip.clip_id, fake=read_video(path), fake_file=path))
        moved += std[0] != ref.offset
        max_conf = max(max_conf, abs(std[1] - ref.conf))
    print(f"paper vs standard on 30 clips: offset changed on {moved}, max |conf| difference {max_conf:.4g}")
