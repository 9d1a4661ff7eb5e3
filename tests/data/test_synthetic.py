"""The synthetic corpus: determinism, exact truth, perturbations and the written layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from data.clip import SAMPLES_PER_FRAME
from data.io import read_audio, read_video
from data.synthetic.face import RIGHT_EYE, eye_aspect_ratio, shift_image
from data.synthetic.generator import (
    DIFFICULTY,
    SyntheticConfig,
    iter_clips,
    make_corpus_spec,
    render_clip,
)
from data.synthetic.perturb import (
    drop_frames,
    duplicate_frames,
    freeze_video,
    jitter,
    remove_blinks,
    shift_audio,
)
from data.synthetic.speech import CONSONANTS, VOWELS, syllables
from data.synthetic.writer import read_truth, write_corpus

SMALL = dict(n_speakers=4, val_speakers=1, test_speakers=1, min_seconds=1.5, max_seconds=2.5)


@pytest.fixture(scope="module")
def spec():
    return make_corpus_spec(SyntheticConfig(n_clips=16, seed=3, **SMALL))


@pytest.fixture(scope="module")
def clips(spec):
    return [render_clip(spec, i) for i in range(len(spec.clips))]


@pytest.fixture(scope="module")
def blink_clip(clips):
    """The clip with the most fully-closed blink frames (the seed is fixed, so this is always the same one)."""
    best = max(clips, key=lambda c: sum(e - s for s, e in c.truth["blinks_closed"]))
    assert best.truth["blinks_closed"], "no clip of the fixture corpus blinks"
    return best


def _frame_rms(clip) -> np.ndarray:
    t = clip.num_frames
    return np.sqrt(np.mean(clip.audio[: t * SAMPLES_PER_FRAME].reshape(t, -1) ** 2, axis=1))


def _inner_gap(landmarks: np.ndarray) -> np.ndarray:
    return np.linalg.norm(landmarks[:, 66] - landmarks[:, 62], axis=1)


# ------------------------------------------------------------------------------------------ generator


def test_same_seed_same_clip_other_seed_other_clip(spec, clips):
    again = render_clip(make_corpus_spec(SyntheticConfig(n_clips=16, seed=3, **SMALL)), 5)
    assert np.array_equal(again.audio, clips[5].audio)
    assert np.array_equal(again.landmarks, clips[5].landmarks)
    assert np.array_equal(again.video, clips[5].video)
    # a clip depends on its own index only, not on how many clips the corpus has
    fewer = render_clip(make_corpus_spec(SyntheticConfig(n_clips=6, seed=3, **SMALL)), 5)
    assert np.array_equal(fewer.audio, clips[5].audio) and np.array_equal(fewer.video, clips[5].video)
    other = render_clip(make_corpus_spec(SyntheticConfig(n_clips=16, seed=4, **SMALL)), 5)
    n = min(other.audio.size, clips[5].audio.size)
    assert not np.array_equal(other.audio[:n], clips[5].audio[:n])
    t = min(other.num_frames, clips[5].num_frames)
    assert np.abs(other.landmarks[:t] - clips[5].landmarks[:t]).mean() > 0.5
    assert [c.clip_id for c in iter_clips(SyntheticConfig(n_clips=16, seed=3, **SMALL), [1, 2])] == [
        clips[1].clip_id,
        clips[2].clip_id,
    ]


def test_clip_contract_words_and_timing(spec, clips):
    vocab = spec.vocabulary
    assert len(vocab) == 20 and len(set(vocab)) == 20
    for w in vocab:
        assert w.isupper() and w.isascii() and 2 <= len(syllables(w)) <= 3
        assert all(c.upper() in CONSONANTS.upper() for c in w[::2]) and all(v in VOWELS.upper() for v in w[1::2])
    for c in clips:
        t = c.num_frames
        assert c.video.shape == (t, 128, 128, 3) and c.video.dtype == np.uint8
        assert c.audio.dtype == np.float32 and c.audio.size == t * SAMPLES_PER_FRAME
        assert np.abs(c.audio).max() <= 1.0
        assert c.landmarks.shape == (t, 68, 2) and c.landmarks.dtype == np.float32
        assert 1.5 <= c.duration <= 2.5 + 0.05
        words = c.truth["words"]
        assert c.transcript == " ".join(w["word"] for w in words) and c.word in c.transcript.split()
        assert all(w["word"] in vocab for w in words)
        ends = [0.0] + [x for w in words for x in (w["start"], w["end"])]
        assert ends == sorted(ends) and ends[-1] <= c.duration
        # leading silence holds only the noise floor; speech is much louder
        lead = c.audio[: int(words[0]["start"] * 16000)]
        assert lead.size >= 0.05 * 16000 * 0.99 and np.abs(lead).max() < 0.1 < np.abs(c.audio).max()
        assert c.truth["av_offset_frames"] == 0 and 0.0 <= c.truth["mouth_lead_ms"] <= 40.0
        assert c.truth["n_frames"] == t and c.truth["speaker_id"] == c.speaker_id


def test_speaker_disjoint_splits():
    cfg = SyntheticConfig()
    spec = make_corpus_spec(cfg)
    assert len(spec.clips) == 240 and len(spec.speakers) == 8
    by_split: dict[str, set[int]] = {}
    for cs in spec.clips:
        by_split.setdefault(cs.split, set()).add(cs.speaker)
        assert cs.split == cfg.speaker_split(cs.speaker)
    assert {k: len(v) for k, v in by_split.items()} == {"train": 5, "val": 1, "test": 2}
    assert not (by_split["train"] & by_split["val"] or by_split["train"] & by_split["test"])
    assert not by_split["val"] & by_split["test"]
    # every test speaker says every word as a key word
    assert {cs.word for cs in spec.clips if cs.split == "test"} == set(spec.vocabulary)
    assert len({cs.clip_id for cs in spec.clips}) == 240


def test_config_errors_are_actionable():
    with pytest.raises(ValueError, match="difficulty"):
        SyntheticConfig(difficulty="impossible")
    with pytest.raises(ValueError, match="training speaker"):
        SyntheticConfig(n_speakers=2, val_speakers=1, test_speakers=1)
    with pytest.raises(ValueError, match="did you mean 'n_clips'"):
        SyntheticConfig.from_overrides(n_clip=3)
    assert SyntheticConfig.from_overrides(clips=7).n_clips == 7


def test_landmark_order_and_eye_aspect_ratio(clips, blink_clip):
    for c in clips[:4]:
        lm = c.landmarks
        x, y = lm[..., 0], lm[..., 1]
        assert (lm >= 0).all() and (lm < 128).all()
        assert (x[:, 0] < x[:, 8]).all() and (x[:, 8] < x[:, 16]).all()  # jaw runs left to right via the chin
        assert (y[:, 8] > y[:, 57]).all() and (y[:, 57] > y[:, 33]).all() and (y[:, 33] > y[:, 39]).all()
        assert (x[:, 36] < x[:, 39]).all() and (x[:, 39] < x[:, 42]).all() and (x[:, 42] < x[:, 45]).all()
        assert (y[:, 19] < y[:, 37]).all() and (y[:, 24] < y[:, 44]).all()  # brows above the eyes
        assert (x[:, 48] < x[:, 60]).all() and (x[:, 64] < x[:, 54]).all()  # inner lip inside the outer
        assert (y[:, 51] <= y[:, 62]).all() and (y[:, 66] <= y[:, 57]).all()
        assert (y[:, 62] > 64).all()  # mouth in the lower half
    ear = eye_aspect_ratio(blink_clip.landmarks)
    eyelid = blink_clip.truth["render"]["eyelid"]
    assert 0.25 <= ear[eyelid == 0].min() and ear[eyelid == 0].max() <= 0.35
    closed = np.concatenate([np.arange(s, e) for s, e in blink_clip.truth["blinks_closed"]])
    assert ear[closed].max() < 0.12
    for s, e in blink_clip.truth["blinks"]:
        assert 3 <= e - s <= 10  # 0.1-0.4 s at 25 fps (at least 3 frames so the lid can close and reopen)


def _sclera_pixels(video: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Per frame, bright unsaturated pixels in the right eye's box (the sclera; skin is more saturated)."""
    out = []
    for frame, lm in zip(video, landmarks):
        eye = lm[RIGHT_EYE]
        x0, y0 = np.floor(eye.min(0)).astype(int) - 1
        x1, y1 = np.ceil(eye.max(0)).astype(int) + 2
        roi = frame[max(y0, 0) : y1, max(x0, 0) : x1].astype(int)
        out.append(int(((roi.min(-1) > 195) & (roi.max(-1) - roi.min(-1) < 30)).sum()))
    return np.array(out)


def test_pixels_follow_landmarks(clips, blink_clip):
    # mouth: pixels of the open mouth (dark cavity or teeth) track the area of the inner-lip polygon
    c = clips[0]
    cavity, teeth = np.array([70, 22, 28]), np.array([236, 232, 220])
    counts = []
    for frame, lm in zip(c.video.astype(int), c.landmarks):
        x0, y0 = np.floor(lm[48:60].min(0)).astype(int)
        x1, y1 = np.ceil(lm[48:60].max(0)).astype(int) + 1
        roi = frame[y0:y1, x0:x1]
        counts.append(int(((np.abs(roi - cavity).max(-1) < 40) | (np.abs(roi - teeth).max(-1) < 40)).sum()))
    x, y = c.landmarks[:, 60:68, 0], c.landmarks[:, 60:68, 1]
    area = 0.5 * np.abs((x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y).sum(1))
    assert np.corrcoef(counts, area)[0, 1] > 0.9
    # eyes: the sclera disappears when the eyelid closes
    sclera = _sclera_pixels(blink_clip.video, blink_clip.landmarks)
    eyelid = blink_clip.truth["render"]["eyelid"]
    closed = eyelid == 1.0
    assert sclera[closed].max() < 0.3 * np.median(sclera[eyelid == 0])


@pytest.mark.parametrize("difficulty", ["easy", "medium"])
def test_mouth_follows_audio(difficulty):
    spec = make_corpus_spec(SyntheticConfig(n_clips=10, difficulty=difficulty, seed=1, **SMALL))
    corr = {k: [] for k in range(-3, 4)}
    for i in range(10):
        c = render_clip(spec, i)
        gap, rms = _inner_gap(c.landmarks), _frame_rms(c)
        t = c.num_frames
        for k in corr:  # mouth at frame v against the sound of frame v + k
            a, b = gap[max(0, -k) : t - max(0, k)], rms[max(0, k) : t - max(0, -k)]
            corr[k].append(np.corrcoef(a, b)[0, 1])
    mean = {k: float(np.mean(v)) for k, v in corr.items()}
    assert mean[0] > 0.6 and mean[0] > mean[3] + 0.3 and mean[0] > mean[-3] + 0.3
    best = max(mean, key=mean.get)
    # easy: in sync by construction; medium: the mouth leads by at most a frame (lead <= 40 ms + anticipation)
    assert best == 0 if difficulty == "easy" else best in (0, 1)


def test_difficulty_knobs_are_measurable():
    def stats(difficulty: str) -> dict[str, float]:
        spec = make_corpus_spec(SyntheticConfig(n_clips=10, difficulty=difficulty, seed=2, **SMALL))
        cs = [render_clip(spec, i) for i in range(10)]
        noise = [np.std(c.audio[: int(c.truth["words"][0]["start"] * 16000)]) for c in cs]
        pose = np.concatenate([c.truth["render"]["pose"] for c in cs])
        return {
            "lead": max(c.truth["mouth_lead_ms"] for c in cs),
            "noise": float(np.median(noise)),
            "motion": float(np.ptp(pose[:, 0])),
            "light": float(np.ptp(np.concatenate([c.truth["render"]["light"][:, 0] for c in cs]))),
            "occluded": sum(c.truth["render"]["occluder"][:, 2].max() > 0 for c in cs),
        }

    easy, medium, hard = stats("easy"), stats("medium"), stats("hard")
    assert easy["lead"] == 0.0 and 0.0 < medium["lead"] <= 40.0 < hard["lead"] <= 80.0
    assert easy["noise"] < medium["noise"] < hard["noise"]
    assert abs(hard["noise"] - DIFFICULTY["hard"].audio_noise) < 0.3 * DIFFICULTY["hard"].audio_noise
    assert easy["motion"] < medium["motion"] < hard["motion"]
    assert easy["light"] == 0.0 < medium["light"] < hard["light"]
    assert easy["occluded"] == medium["occluded"] == 0 < hard["occluded"]


def test_96_pixel_frames_scale_the_face():
    c96 = render_clip(make_corpus_spec(SyntheticConfig(n_clips=2, size=96, seed=3, **SMALL)), 1)
    c128 = render_clip(make_corpus_spec(SyntheticConfig(n_clips=2, size=128, seed=3, **SMALL)), 1)
    assert c96.video.shape[1:] == (96, 96, 3)
    assert np.allclose(c96.landmarks * (128 / 96), c128.landmarks, atol=0.6)


# ------------------------------------------------------------------------------------------ perturbations


def test_shift_audio_moves_by_whole_frames(clips):
    c = clips[2]
    before = c.audio.copy()
    ahead = shift_audio(c, 3)
    assert np.array_equal(c.audio, before)  # pure
    assert ahead.audio.size == c.audio.size and ahead.truth["av_offset_frames"] == 3
    assert np.array_equal(ahead.audio[: -3 * 640], c.audio[3 * 640 :]) and not ahead.audio[-3 * 640 :].any()
    assert np.array_equal(ahead.video, c.video) and np.array_equal(ahead.landmarks, c.landmarks)
    assert ahead.truth["words"][-1]["end"] == pytest.approx(c.truth["words"][-1]["end"] - 0.12)
    late = shift_audio(c, -2)
    assert late.truth["av_offset_frames"] == -2 and not late.audio[: 2 * 640].any()
    assert np.array_equal(late.audio[2 * 640 :], c.audio[: -2 * 640])
    assert shift_audio(ahead, -3).truth["av_offset_frames"] == 0
    assert c.truth["av_offset_frames"] == 0 and c.truth["perturbations"] == []


def test_freeze_drop_duplicate_keep_length_and_truth(clips):
    c = clips[3]
    t = c.num_frames
    frozen = freeze_video(c)
    assert frozen.num_frames == t and (frozen.video == c.video[0]).all()
    assert np.array_equal(frozen.audio, c.audio) and (frozen.landmarks == c.landmarks[0]).all()
    dropped = drop_frames(c, [2, 5])
    src = dropped.truth["render"]["source_frame"]
    assert src.tolist() == [0, 1, 3, 4] + list(range(6, t)) + [t - 1, t - 1]
    assert np.array_equal(dropped.video, c.video[src]) and np.array_equal(dropped.audio, c.audio)
    dup = duplicate_frames(c, [1])
    assert dup.truth["render"]["source_frame"].tolist() == [0, 1] + list(range(1, t - 1))
    assert np.array_equal(dup.landmarks, c.landmarks[dup.truth["render"]["source_frame"]])
    with pytest.raises(ValueError, match="out of range"):
        drop_frames(c, [t])


def test_remove_blinks_opens_every_eye(blink_clip):
    c = blink_clip
    open_ = remove_blinks(c)
    assert open_.truth["blinks"] == [] and open_.truth["blinks_closed"] == []
    assert eye_aspect_ratio(open_.landmarks).min() > 0.25
    in_blink = np.zeros(c.num_frames, bool)
    for s, e in c.truth["blinks"]:
        in_blink[s:e] = True
    assert np.array_equal(open_.video[~in_blink], c.video[~in_blink])  # everything else re-renders exactly
    assert not np.array_equal(open_.video[in_blink], c.video[in_blink])
    sclera = _sclera_pixels(open_.video, open_.landmarks)
    assert sclera.min() > 0.6 * np.median(sclera)
    # composes with other perturbations: a frozen clip re-rendered open has still one frame, repeated
    assert (remove_blinks(freeze_video(c)).video == open_.video[0]).all()


def test_jitter_translates_pixels_and_landmarks(clips):
    c = clips[4]
    j = jitter(c, 3, seed=7)
    offsets = j.truth["render"]["jitter"]
    assert np.abs(offsets).max() <= 3 and np.abs(offsets).max() > 0
    assert np.allclose(j.landmarks, c.landmarks + offsets[:, None, :])
    for i in range(c.num_frames):
        assert np.array_equal(j.video[i], shift_image(c.video[i], int(offsets[i, 0]), int(offsets[i, 1])))
    assert np.array_equal(jitter(c, 3, seed=7).video, j.video)


# ------------------------------------------------------------------------------------------ written corpus


def _lag(reference: np.ndarray, decoded: np.ndarray) -> int:
    cc = scipy.signal.correlate(decoded.astype(np.float64), reference.astype(np.float64), mode="full")
    return int(scipy.signal.correlation_lags(decoded.size, reference.size)[np.argmax(cc)])


@pytest.fixture(scope="module")
def small_cfg():
    return SyntheticConfig(n_clips=6, n_speakers=3, val_speakers=1, test_speakers=1, size=96, seed=9)


@pytest.mark.parametrize("layout", ["lrw", "crema", "voxceleb2", "lrs2", "lrs3"])
def test_written_corpus_round_trips(layout, small_cfg, tmp_path):
    from data.layouts import get_layout

    root = tmp_path / layout
    summary = write_corpus(small_cfg, root, layout, workers=1, progress=False)
    assert summary["clips"] == 6 and summary["splits"] == {"train": 2, "val": 2, "test": 2}
    corpus = json.loads((root / "corpus.json").read_text())
    assert corpus["layout"] == layout and corpus["config"]["seed"] == 9 and len(corpus["vocabulary"]) == 20
    spec = make_corpus_spec(small_cfg)
    listed = {s: (root / "splits" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    assert sorted(sum(listed.values(), [])) == sorted(c["video"] for c in corpus["clips"])

    for entry, cs in zip(corpus["clips"], spec.clips):
        video = root / entry["video"]
        parts = Path(entry["video"]).parts
        if layout == "lrw":
            assert parts[0] == cs.word and parts[1] == cs.split and video.name.startswith(f"{cs.word}_0000")
            assert video.with_suffix(".txt").read_text().splitlines()[0] == f"Text: {cs.word}"
        elif layout == "crema":
            actor, sent, emo, lvl = video.stem.split("_")
            assert parts[0] == "VideoFlash" and video.suffix == ".flv" and actor == str(1001 + cs.speaker)
            assert len(sent) == 3 and len(emo) == 3 and len(lvl) == 2
            assert entry["audio"] == f"AudioWAV/{video.stem}.wav"
        elif layout == "lrs2":
            assert parts[0] == "main" and parts[1].isdigit() and video.stem.isdigit() and len(video.stem) == 5
            assert video.with_suffix(".txt").read_text().startswith("Text:  ")
        elif layout == "lrs3":
            assert parts[0] == ("test" if cs.split == "test" else "trainval") and len(parts[1]) == 11
            assert video.with_suffix(".txt").read_text().startswith("Text:  ")
        else:
            assert parts[0] == ("test" if cs.split == "test" else "dev") and parts[1] == "mp4"
            assert parts[2] == f"id{12 + cs.speaker:05d}" and len(parts[3]) == 11
            assert len(video.stem) == 5 and video.stem.isdigit() and video.suffix == ".mp4"
        assert (root / entry["video"]).with_name(video.stem + ".truth.json").exists()

        truth, landmarks = read_truth(video)
        t = truth["n_frames"]
        frames = read_video(video)
        assert frames.shape == (t, 96, 96, 3)
        clip = render_clip(spec, cs.index)
        assert np.abs(frames.astype(int) - clip.video).mean() < 6  # lossy codec, same picture, same order
        assert np.array_equal(landmarks, clip.landmarks) and truth["clip_id"] == clip.clip_id
        audio = read_audio(video)
        n = t * SAMPLES_PER_FRAME
        # AAC in mp4: exactly T*640 (edit list trims priming and padding); MP3 in flv: + <= 836 end padding
        assert n <= audio.size <= n + (0 if layout != "crema" else 836)
        assert abs(_lag(clip.audio, audio)) <= 2
        if entry["audio"]:
            wav = read_audio(root / entry["audio"])
            assert wav.size == n and np.abs(wav - clip.audio).max() < 1e-4

    refs = get_layout(layout).scan(root)
    assert len(refs) == 6 and sorted(r.split for r in refs) == sorted(c.split for c in spec.clips)


def test_writer_is_deterministic_across_workers_and_sidecars_rerender(small_cfg, tmp_path):
    one = write_corpus(small_cfg, tmp_path / "one", "crema", workers=1, progress=False)
    two = write_corpus(small_cfg, tmp_path / "two", "crema", workers=2, progress=False)
    assert one["clips"] == two["clips"] == 6
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    for rel in files:
        if rel.suffix in (".wav", ".json") and rel.name != "corpus.json":
            assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    with pytest.raises(FileExistsError):
        write_corpus(small_cfg, tmp_path / "one", "crema", workers=1, progress=False)

    # a clip read back from disk with its sidecars can still be perturbed exactly
    from data.clip import Clip

    video = sorted((tmp_path / "one" / "VideoFlash").glob("*.flv"))[0]
    truth, landmarks = read_truth(video)
    clip = render_clip(make_corpus_spec(small_cfg), truth["clip_index"])
    loaded = Clip(clip_id=truth["clip_id"], video=clip.video, audio=clip.audio, landmarks=landmarks, truth=truth)
    assert np.array_equal(remove_blinks(loaded).video, remove_blinks(clip).video)
