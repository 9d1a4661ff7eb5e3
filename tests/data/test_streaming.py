"""Streamed training batches mix speakers: shards hold clips in hashed order, and a stream draws from several
shards at once (data.manifest.assign_shards, data.datamodule.StreamingWindows, docs/streaming.md)."""

from __future__ import annotations

import numpy as np
import pytest

from data.crema import CremaCorpus
from data.datamodule import StreamingWindows
from data.manifest import assign_shards, write_manifest
from data.synthetic.writer import synth_main
from models.common.windows import SYNC_T, ClipWindows

SPEAKERS, CLIPS, BATCH, SHARD_CLIPS = 10, 40, 8, 4  # 7 train speakers (1 val, 2 test), 4 clips each


class SpeakerWindows(ClipWindows):
    """Real window picking (a clip uniformly, then a window start; ClipWindows) whose items are the speaker."""

    def __init__(self, clips, **kwargs):
        super().__init__(clips, **kwargs)
        self.speaker_of = {c.clip_id: c.speaker_id for c in clips}

    def _valid_starts(self, num_frames: int, mel: np.ndarray) -> np.ndarray:
        return np.arange(num_frames - SYNC_T + 1)

    def __getitem__(self, index: int) -> str:
        clip, _ = self._pick(self._generator(index))
        return self.speaker_of[self.clip_ids[clip]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "CREMA-D"
    # what `bench data synth --layout crema --out DIR --clips 40 --speakers 10` writes
    synth_main("crema", root, seed=3, clips=CLIPS, speakers=SPEAKERS, size=96, workers=1, progress=False)
    prep = {"landmarks": "truth", "workers": 1, "shard_clips": SHARD_CLIPS, "features": ["mel"]}
    c = CremaCorpus(root=root, prepared=tmp_path_factory.mktemp("prep"), prepare=prep, streaming=True)
    c.ensure(progress=False)
    return c


def speakers_per_batch(corpus, shuffle_buffer: int, n_batches: int = 150) -> tuple[float, float]:
    """(mean distinct speakers per batch of the stream, its expectation for independent draws with the same
    speaker frequencies): E = sum over speakers s of 1 - (1 - p_s) ** BATCH."""
    stream = StreamingWindows(corpus, "train", SpeakerWindows, seed=0, rank=0, world=1, shuffle_buffer=shuffle_buffer)
    items = [s for _, s in zip(range(n_batches * BATCH), stream)]
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    measured = float(np.mean([len(set(b)) for b in batches]))
    _, counts = np.unique(items, return_counts=True)
    p = counts / counts.sum()
    return measured, float(np.sum(1.0 - (1.0 - p) ** BATCH))


def test_shards_hold_many_speakers_in_a_stable_order():
    entries = [
        {"clip_id": f"{1000 + i // 8}_{i % 8:02d}", "split": "train", "speaker_id": str(1000 + i // 8)}
        for i in range(64)
    ]
    assign_shards(entries, 8)
    by_shard: dict[int, set] = {}
    for e in entries:
        by_shard.setdefault(e["shard"], set()).add(e["speaker_id"])
    assert len(by_shard) == 8 and min(map(len, by_shard.values())) >= 4  # consecutive runs: 1 speaker per shard
    again = [dict(e) for e in reversed(entries)]
    assign_shards(again, 8)
    assert {e["clip_id"]: e["shard"] for e in again} == {e["clip_id"]: e["shard"] for e in entries}


def test_stream_batches_mix_speakers_like_independent_draws(corpus):
    index = corpus.index
    train = index.select("train")
    assert len(np.unique(index.speaker[train])) == 7 and len(np.unique(index.shard[train])) == 7

    measured, iid = speakers_per_batch(corpus, shuffle_buffer=4 * SHARD_CLIPS)
    print(f"hashed shards, 4 shards open: {measured:.2f} speakers per batch of {BATCH} (independent draws {iid:.2f})")
    assert measured >= 0.8 * iid

    # the former behaviour: shards cut from consecutive clip ids (one speaker each), one shard at a time
    entries = index.entries(range(len(index)))
    for split in ("train", "val", "test"):
        members = [e for e in entries if e["split"] == split]
        for k, e in enumerate(members):
            e["shard"] = 1000 * ("train", "val", "test").index(split) + k // SHARD_CLIPS
    write_manifest(corpus.prepared, entries)
    corpus._index = None
    old, old_iid = speakers_per_batch(corpus, shuffle_buffer=0)
    print(f"consecutive shards, one at a time: {old:.2f} speakers per batch (independent draws {old_iid:.2f})")
    assert old < 0.8 * old_iid
    # the buffer alone already mixes consecutive shards
    buffered, buffered_iid = speakers_per_batch(corpus, shuffle_buffer=4 * SHARD_CLIPS)
    print(f"consecutive shards, 4 open: {buffered:.2f} speakers per batch (independent draws {buffered_iid:.2f})")
    assert buffered > old
