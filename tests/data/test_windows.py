"""Training windows for the Wav2Lip family: shapes, ranges, alignment, masking, negatives, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data.audio import wav2lip_melspectrogram
from data.clip import Clip
from models.common.frames import model_to_rgb, resize_faces, rgb_to_model
from models.syncnet.windows import SyncExpertWindows
from models.wav2lip.windows import Wav2LipWindows


def synthetic_clips(n: int, size: int = 96) -> list[Clip]:
    """Clips from the synthetic corpus generator (deterministic, ~20 ms each)."""
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(n_clips=n, size=size, min_seconds=1.2, max_seconds=2.0, seed=3))
    return [render_clip(spec, i) for i in range(n)]


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    return synthetic_clips(3)


@pytest.fixture(scope="module")
def mels(clips: list[Clip]) -> list[np.ndarray]:
    return [wav2lip_melspectrogram(c.audio) for c in clips]


def bgr_unit(frames: np.ndarray) -> np.ndarray:
    """The official loader's view of RGB frames: BGR, [0, 1], channels first (written independently)."""
    return np.ascontiguousarray(frames[..., ::-1].transpose(0, 3, 1, 2)).astype(np.float32) / 255.0


def test_models_declare_their_windows(clips: list[Clip]) -> None:
    # each model's train_dataset (models/base.py) builds its windows: these two are tested below, every model's
    # by tests/models/test_contract.py
    from models.syncnet.module import SyncNetExpertConfig, SyncNetExpertModule
    from models.wav2lip.module import Wav2LipConfig, Wav2LipModule

    expert = SyncNetExpertModule(SyncNetExpertConfig.preset("tiny"))
    assert type(expert.train_dataset(clips, seed=0, fixed=True)) is SyncExpertWindows
    wav2lip = Wav2LipModule(Wav2LipConfig.preset("tiny"))
    assert type(wav2lip.train_dataset(clips, seed=0, fixed=True)) is Wav2LipWindows


def test_colour_helpers_round_trip() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    model = rgb_to_model(rgb)
    assert model.shape == (2, 3, 5, 7) and model.dtype == torch.float32
    np.testing.assert_array_equal(model.numpy(), np.stack([bgr_unit(f[None])[0] for f in rgb]))
    np.testing.assert_array_equal(model_to_rgb(model), rgb)


def test_resize_faces_shrinks_to_96() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    out = resize_faces(frames)
    assert out.shape == (3, 96, 96, 3) and out.dtype == np.uint8
    assert resize_faces(out) is out  # already 96x96: no copy


def test_sync_expert_items(clips: list[Clip], mels: list[np.ndarray]) -> None:
    ds = SyncExpertWindows(clips, fixed=True, length=40, negative_min_shift=2)
    assert len(ds) == 40
    labels = []
    for i in range(len(ds)):
        item = ds[i]
        clip = clips[item["clip"]]
        f0, fs = item["start"], item["face_start"]
        assert item["face"].shape == (15, 48, 96) and item["face"].dtype == torch.float32
        assert item["mel"].shape == (1, 80, 16)
        assert 0.0 <= float(item["face"].min()) and float(item["face"].max()) <= 1.0
        # audio window: mel columns int(80 f0 / 25) .. + 16 (color_syncnet_train.py crop_audio_window)
        mel = mels[item["clip"]]
        col = int(80 * f0 / 25)
        np.testing.assert_array_equal(item["mel"][0].numpy(), mel[:, col : col + 16])
        # face: lower halves (rows 48-95) of frames fs..fs+4, channel 3 t + c, BGR
        expected = bgr_unit(clip.video[fs : fs + 5, 48:96]).reshape(15, 48, 96)
        np.testing.assert_allclose(item["face"].numpy(), expected, atol=1e-7)
        label = float(item["label"])
        labels.append(label)
        if label == 1.0:
            assert fs == f0
        else:
            assert abs(fs - f0) >= 2
            assert not torch.equal(
                item["face"], torch.from_numpy(bgr_unit(clip.video[f0 : f0 + 5, 48:]).reshape(15, 48, 96))
            )
    assert labels == [1.0, 0.0] * 20  # fixed mode: exactly balanced


def test_sync_expert_random_mode_is_balanced_and_official_negatives(clips: list[Clip]) -> None:
    ds = SyncExpertWindows(clips, seed=1, length=400)  # negative_min_shift=1: any other window (official)
    items = [ds[i] for i in range(400)]
    positives = sum(float(it["label"]) for it in items)
    assert 150 < positives < 250
    assert all(it["face_start"] != it["start"] for it in items if it["label"] == 0)


def test_wav2lip_items_masking_and_alignment(clips: list[Clip], mels: list[np.ndarray]) -> None:
    ds = Wav2LipWindows(clips, fixed=True, length=30)
    for i in range(len(ds)):
        item = ds[i]
        clip = clips[item["clip"]]
        f0, fr = item["start"], item["ref_start"]
        assert item["face"].shape == (6, 5, 96, 96)
        assert item["target"].shape == (3, 5, 96, 96)
        assert item["mels"].shape == (5, 1, 80, 16) and item["mel"].shape == (1, 80, 16)
        target = torch.from_numpy(bgr_unit(clip.video[f0 : f0 + 5])).transpose(0, 1)
        torch.testing.assert_close(item["target"], target, rtol=0, atol=1e-7)
        # masked copy: rows 48-95 exactly zero, rows 0-47 untouched
        assert torch.count_nonzero(item["face"][:3, :, 48:]) == 0
        torch.testing.assert_close(item["face"][:3, :, :48], target[:, :, :48], rtol=0, atol=0)
        assert torch.count_nonzero(item["target"][:, :, 48:]) > 0
        # reference: another window of the same clip
        assert fr != f0
        ref = torch.from_numpy(bgr_unit(clip.video[fr : fr + 5])).transpose(0, 1)
        torch.testing.assert_close(item["face"][3:], ref, rtol=0, atol=1e-7)
        # expert mel at f0; per-frame mels one frame earlier (get_segmented_mels), never before the audio
        mel = mels[item["clip"]]
        col = int(80 * f0 / 25)
        np.testing.assert_array_equal(item["mel"][0].numpy(), mel[:, col : col + 16])
        assert f0 >= 1
        for k in range(5):
            col = int(80 * (f0 + k - 1) / 25)
            np.testing.assert_array_equal(item["mels"][k, 0].numpy(), mel[:, col : col + 16])


def test_wav2lip_window_starts_respect_audio_bounds(clips: list[Clip], mels: list[np.ndarray]) -> None:
    official = Wav2LipWindows(clips, mel_frame_offset=-1)
    inference = Wav2LipWindows(clips, mel_frame_offset=0)
    for starts_off, starts_inf, clip, mel in zip(official.starts, inference.starts, clips, mels):
        mel_len = mel.shape[1]
        assert starts_off.min() == 1 and starts_inf.min() == 0
        for offset, starts in ((-1, starts_off), (0, starts_inf)):

            def last_mel_column(f0: int, offset: int = offset) -> int:
                return max(int(80 * f0 / 25), int(80 * (f0 + 4 + offset) / 25)) + 16

            last = int(starts.max())
            assert last_mel_column(last) <= mel_len and last + 5 <= clip.num_frames
            # the next start is rejected because its audio or frames run out
            assert last_mel_column(last + 1) > mel_len or last + 6 > clip.num_frames
    item = Wav2LipWindows(clips, mel_frame_offset=0, fixed=True)[0]
    np.testing.assert_array_equal(item["mels"][0].numpy(), item["mel"].numpy())


def test_fixed_mode_is_a_function_of_seed_and_index(clips: list[Clip]) -> None:
    a = Wav2LipWindows(clips, fixed=True, seed=5)
    b = Wav2LipWindows(clips, fixed=True, seed=5)
    for i in (0, 7, 3, 7):
        assert (a[i]["clip"], a[i]["start"], a[i]["ref_start"]) == (b[i]["clip"], b[i]["start"], b[i]["ref_start"])
    c = Wav2LipWindows(clips, fixed=True, seed=6)
    assert [c[i]["start"] for i in range(10)] != [a[i]["start"] for i in range(10)]


def test_random_mode_reproducible_with_workers(clips: list[Clip]) -> None:
    ds = SyncExpertWindows(clips, length=16, seed=2)

    def run() -> list[tuple[int, int, int]]:
        loader = DataLoader(ds, batch_size=4, num_workers=2, generator=torch.Generator().manual_seed(0))
        return [
            (int(c), int(s), int(f))
            for batch in loader
            for c, s, f in zip(batch["clip"], batch["start"], batch["face_start"])
        ]

    first = run()
    assert first == run()
    assert first[:4] != first[4:8]  # the two workers draw different windows
    main_process = [(ds[i]["clip"], ds[i]["start"]) for i in range(8)]
    assert main_process != [(c, s) for c, s, _ in first[:8]]


def test_short_clips_are_skipped() -> None:
    rng = np.random.default_rng(0)
    short = Clip("short", rng.integers(0, 256, (5, 96, 96, 3), dtype=np.uint8), np.zeros(5 * 640, np.float32))
    ok = synthetic_clips(1)[0]
    ds = SyncExpertWindows([short, ok])
    assert ds.skipped == ["short"] and ds.clip_ids == [ok.clip_id]
    with pytest.raises(ValueError, match="long enough"):
        Wav2LipWindows([short])


def test_larger_renders_are_resized_once() -> None:
    clip = synthetic_clips(1, size=128)[0]
    ds = Wav2LipWindows([clip], fixed=True)
    assert ds.faces[0].shape == (clip.num_frames, 96, 96, 3)
    item = ds[0]
    expected = torch.from_numpy(bgr_unit(resize_faces(clip.video[item["start"] : item["start"] + 5]))).transpose(0, 1)
    torch.testing.assert_close(item["target"], expected, rtol=0, atol=1e-7)
