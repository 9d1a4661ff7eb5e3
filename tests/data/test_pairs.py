"""Wav2Lip's pair protocol (data/pairs.py) and the LRS2 / LRS3 layouts its published lists name clips of."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from data.clip import SAMPLES_PER_FRAME, Clip
from data.layouts import get_layout
from data.pairs import (
    PairListError,
    generate_pair_list,
    paired_clips,
    parse_pair_text,
    read_pair_list,
    real_counterpart,
)


def _clip(clip_id: str, frames: int, speaker: str, value: int, audio_frames: int | None = None) -> Clip:
    n = (audio_frames if audio_frames is not None else frames) * SAMPLES_PER_FRAME
    audio = np.full(n, value / 100.0, np.float32)
    return Clip(clip_id, np.full((frames, 8, 8, 3), value, np.uint8), audio, speaker_id=speaker, split="test")


def test_the_hash_of_a_published_list_is_the_hash_of_its_bytes(tmp_path):
    # the published files end every line with a newline and carry no trailing blanks: their canonical text is
    # their bytes, so the pinned hash is `sha256sum lrs2.txt`; CRLF line ends or a blank line do not change it
    text = "6339758276407584924/00098 6330311066473698535/00011\n6356573073371408843/00023 6330311066473698535/00022\n"
    (tmp_path / "a.txt").write_text(text)
    (tmp_path / "b.txt").write_bytes(text.replace("\n", "\r\n").encode() + b"\r\n")
    want = hashlib.sha256(text.encode()).hexdigest()
    assert read_pair_list(tmp_path / "a.txt").sha256 == want == read_pair_list(tmp_path / "b.txt", want).sha256
    with pytest.raises(PairListError, match="not the protocol's pinned"):
        read_pair_list(tmp_path / "a.txt", "0" * 64)
    (tmp_path / "c.txt").write_text("only_one_column\n")
    with pytest.raises(PairListError, match="line 1"):
        read_pair_list(tmp_path / "c.txt")
    with pytest.raises(PairListError, match="not found"):
        read_pair_list(tmp_path / "missing.txt")


def test_pairs_become_clips_named_by_line_driven_by_the_other_clip():
    clips = [
        _clip("main/111/00001", 30, "", 10),
        _clip("main/222/00001", 20, "", 20),
        _clip("main/333/00007", 12, "", 30),
    ]
    # LRS2-style names are relative to main/; the last line's video (12 frames) is shorter than its audio (30)
    pairs = parse_pair_text("222/00001 111/00001\n333/00007 222/00001\n111/00001 333/00007\n", "list")
    out, notes = paired_clips(clips, pairs)
    assert [c.clip_id for c in out] == ["0", "1"]
    first = out[0]
    assert first.num_frames == 20 and first.audio.shape[0] == 20 * SAMPLES_PER_FRAME  # T = the audio's frames
    assert (first.video == 10).all() and np.allclose(first.audio, 0.2)  # video of 111, audio of 222
    assert first.truth["pair"] == {
        "line": 0,
        "audio": "main/222/00001",
        "video": "main/111/00001",
        "list": pairs.sha256,
        "lines": 3,
    }
    assert notes == ["1 of 3 pairs left out: the video is shorter than the audio"]
    real = real_counterpart(first)
    assert np.allclose(real.audio, 0.1) and (real.video == first.video).all()  # the video with its own audio
    assert real_counterpart(clips[0]) is clips[0]


def test_lrw_lists_name_clips_by_base_name_and_unknown_names_are_refused():
    clips = [_clip("BRING/test/BRING_00018", 29, "", 1), _clip("WESTERN/test/WESTERN_00039", 29, "", 2)]
    out, _ = paired_clips(clips, parse_pair_text("BRING_00018 WESTERN_00039\n", "lrw.txt"))
    assert (out[0].video == 2).all() and np.allclose(out[0].audio, 0.01)
    with pytest.raises(PairListError, match="match no test clip"):
        paired_clips(clips, parse_pair_text("BRING_00018 NOPE_00001\n", "lrw.txt"))


def test_a_generated_list_crosses_speakers_fits_the_video_and_is_seeded():
    clips = [_clip(f"s{s}/c{i}", 10 + 3 * i, f"s{s}", 10 * s + i) for s in range(3) for i in range(3)]
    a, b = generate_pair_list(clips, seed=0), generate_pair_list(clips, seed=0)
    assert a == b and generate_pair_list(clips, seed=1).sha256 != a.sha256
    by_id = {c.clip_id: c for c in clips}
    for audio, video in a.pairs:
        assert by_id[audio].speaker_id != by_id[video].speaker_id
        assert by_id[audio].audio.shape[0] // SAMPLES_PER_FRAME <= by_id[video].num_frames
    out, notes = paired_clips(clips, a)
    assert len(out) == len(a.pairs) and not notes
    with pytest.raises(PairListError):
        generate_pair_list([clips[0]])


def test_a_protocol_that_pins_a_list_refuses_to_run_without_it(tmp_path):
    from benchmark.clips import pair_list
    from benchmark.config import compose

    cfg = compose("static", "synthetic", overrides=[f"run.out_dir={tmp_path}"], protocol="wav2lip_synthetic")
    assert cfg.run.pairs.list == "generated"
    cfg.run.pairs.list = None
    cfg.run.pairs.sha256 = "ab" * 32
    with pytest.raises(PairListError, match="run.pairs.list="):
        pair_list(cfg, corpus=None)  # type: ignore[arg-type]


def test_lrs2_and_lrs3_layouts_read_the_official_splits(tmp_path):
    lrs2 = tmp_path / "mvlrs_v1"
    for rel in ("main/111/00001", "main/111/00002", "main/222/00001", "main/333/00001"):
        (lrs2 / rel).parent.mkdir(parents=True, exist_ok=True)
        (lrs2 / f"{rel}.mp4").write_bytes(b"")
    (lrs2 / "train.txt").write_text("111/00001\n111/00002 MV\n")
    (lrs2 / "test.txt").write_text("222/00001\n")
    refs = {r.clip_id: r.split for r in get_layout("lrs2").scan(lrs2)}
    assert refs == {
        "main/111/00001": "train",
        "main/111/00002": "train",
        "main/222/00001": "test",
        "main/333/00001": "",
    }
    lrs3 = tmp_path / "lrs3"
    for rel in ("trainval/talkA/00001", "test/talkB/00002", "pretrain/talkC/00001"):
        (lrs3 / rel).parent.mkdir(parents=True, exist_ok=True)
        (lrs3 / f"{rel}.mp4").write_bytes(b"")
    refs3 = [(r.clip_id, r.speaker_id, r.split) for r in get_layout("lrs3").scan(lrs3)]
    assert refs3 == [("test/talkB/00002", "talkB", "test"), ("trainval/talkA/00001", "talkA", "train")]
