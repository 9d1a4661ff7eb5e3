"""Corpora read back through the layout code: splits, decode-once cache, the clip contract, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from data.clip import SAMPLES_PER_FRAME
from data.corpus import ClipStore, LayoutCorpus, load_clip
from data.io import MediaError, write_video
from data.layouts import ClipRef, get_layout
from data.synthetic.generator import SyntheticConfig
from data.synthetic.writer import write_corpus

CFG = SyntheticConfig(seed=5, n_speakers=4, n_clips=8, size=96, min_seconds=1.0, max_seconds=1.4)


@pytest.fixture(scope="module", params=["lrw", "crema", "voxceleb2"])
def written(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    write_corpus(CFG, root / "c", request.param, workers=1, progress=False)
    return request.param, root / "c"


def test_layout_corpus_reads_every_clip_with_speaker_disjoint_splits(written, tmp_path):
    layout, root = written
    corpus = LayoutCorpus("synthetic", root, layout, cache_dir=tmp_path / "cache")
    refs = corpus.all_refs()
    assert len(refs) == CFG.n_clips
    assert {r.split for r in refs} == {"train", "val", "test"}
    assert corpus.speaker_overlap() == {} or layout == "lrw"  # LRW has no speaker labels in its paths
    clip = corpus.clips("test")[0]
    assert clip.video.dtype == np.uint8 and clip.video.shape[1:] == (96, 96, 3)
    assert clip.audio.shape[0] == clip.num_frames * SAMPLES_PER_FRAME
    assert clip.landmarks is not None and clip.landmarks.shape == (clip.num_frames, 68, 2)
    assert clip.speaker_id


def test_cache_returns_the_same_clip(written, tmp_path):
    layout, root = written
    ref = get_layout(layout).scan(root)[0]
    store = ClipStore(tmp_path / "cache")
    first = store.get(ref)
    again = store.get(ref)
    assert (store.cache_dir / ref.clip_id / "video.npy").exists()
    np.testing.assert_array_equal(np.asarray(again.video), first.video)
    np.testing.assert_array_equal(again.audio, first.audio)
    render, again_render = first.truth.pop("render"), again.truth.pop("render")
    assert again.truth == first.truth
    assert render.keys() == again_render.keys()
    for k in render:
        np.testing.assert_array_equal(again_render[k], render[k])


def test_split_files_override_layout_rule(written, tmp_path):
    layout, root = written
    refs = get_layout(layout).scan(root)
    assert (root / "splits" / "test.txt").exists()
    listed = {line.rsplit(".", 1)[0] for line in (root / "splits" / "test.txt").read_text().split()}
    assert {r.clip_id for r in refs if r.split == "test"} == listed


def test_corrupt_and_mismatched_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError, match="bad.mp4"):
        load_clip(ClipRef("bad", bad, None, "s", "test"))
    frames = np.zeros((20, 32, 32, 3), np.uint8)
    short = tmp_path / "short.mp4"
    write_video(short, frames, np.zeros(5 * SAMPLES_PER_FRAME, np.float32))
    with pytest.raises(MediaError, match="short.mp4.*frames"):
        load_clip(ClipRef("short", short, None, "s", "test"))


def test_unknown_layout_suggests():
    with pytest.raises(ValueError, match="did you mean 'crema'"):
        get_layout("cremma")


def test_synthetic_clip_from_disk_can_be_rerendered(tmp_path):
    """Render parameters survive the sidecars and the decode-once cache, so perturbations re-render clips."""
    from data.corpus import SyntheticCorpus
    from data.synthetic.perturb import remove_blinks

    corpus = SyntheticCorpus(
        "synthetic", tmp_path / "c", "crema", synth={"seed": 5, "n_speakers": 4, "n_clips": 8, "size": 96}
    )
    corpus.ensure()
    for _ in range(2):  # the first read decodes and caches, the second reads the cache
        clip = corpus.clips("train")[0]
        assert {"eyelid", "jitter", "pose"} <= set(clip.truth["render"])
        assert clip.truth["render"]["eyelid"].shape[0] == clip.num_frames
        still = remove_blinks(clip)
        assert still.truth["blinks"] == []
        assert still.video.shape == clip.video.shape
