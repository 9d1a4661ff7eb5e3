"""The manifest index: a million entries indexed without loading clips, rank shards disjoint, rebuilds."""

from __future__ import annotations

import numpy as np
import pytest

from data.manifest import INDEX, MANIFEST, ManifestIndex, assign_shards, write_manifest

SPLIT_OF = ("train", "train", "train", "val", "test")


def _entries(n: int, shard_clips: int = 1000):
    # VoxCeleb2-like ids; never a list of n dicts in memory
    for i in range(n):
        split = SPLIT_OF[i % 5]
        yield {
            "clip_id": f"dev/mp4/id{i // 200:05d}/v{i // 5:07d}/{i % 5 + 1:05d}",
            "split": split,
            "shard": i // shard_clips,
            "n_frames": 50 + i % 100,
            "speaker_id": f"id{i // 200:05d}",
            "dir": f"clips/{i}",
        }


def test_million_entry_manifest_is_indexed_without_loading_clips(tmp_path):
    n = 1_000_000
    assert write_manifest(tmp_path, _entries(n)) == n
    index = ManifestIndex.open(tmp_path)
    assert len(index) == n
    assert index.counts() == {"train": 600_000, "val": 200_000, "test": 200_000}
    assert index.entry(n - 1)["clip_id"] == f"dev/mp4/id{(n - 1) // 200:05d}/v{(n - 1) // 5:07d}/00005"
    assert index.entry(123_457)["n_frames"] == 50 + 123_457 % 100
    # index arrays only: a few bytes per entry, nothing per clip
    nbytes = sum(a.nbytes for a in (index.offsets, index.split, index.shard, index.n_frames, index.speaker))
    assert nbytes < 25 * n
    # every rank reads whole shards, disjoint, together the whole split
    world = 4
    parts = [index.rank_indices("train", r, world) for r in range(world)]
    union = np.concatenate(parts)
    assert len(union) == len(np.unique(union)) == 600_000
    shard_sets = [set(index.shard[p].tolist()) for p in parts]
    assert all(not (shard_sets[a] & shard_sets[b]) for a in range(world) for b in range(a + 1, world))


def test_rewriting_the_same_manifest_changes_nothing_and_a_stale_index_is_rebuilt(tmp_path):
    write_manifest(tmp_path, _entries(500, shard_clips=50))
    first = (tmp_path / MANIFEST).stat().st_mtime_ns, (tmp_path / INDEX).stat().st_mtime_ns
    write_manifest(tmp_path, _entries(500, shard_clips=50))
    assert ((tmp_path / MANIFEST).stat().st_mtime_ns, (tmp_path / INDEX).stat().st_mtime_ns) == first
    ref = ManifestIndex.open(tmp_path)
    (tmp_path / INDEX).unlink()
    rebuilt = ManifestIndex.open(tmp_path)
    np.testing.assert_array_equal(rebuilt.offsets, ref.offsets)
    np.testing.assert_array_equal(rebuilt.shard, ref.shard)
    assert rebuilt.entry(499) == ref.entry(499)


def test_fewer_shards_than_ranks_still_gives_every_rank_distinct_clips(tmp_path):
    write_manifest(tmp_path, _entries(30, shard_clips=100))  # one shard per split
    index = ManifestIndex.open(tmp_path)
    parts = [set(index.rank_indices("train", r, 3).tolist()) for r in range(3)]
    assert all(parts) and sum(map(len, parts)) == len(index.select("train"))
    assert not (parts[0] & parts[1] or parts[1] & parts[2] or parts[0] & parts[2])
    with pytest.raises(ValueError, match="rank 3"):
        index.rank_indices("train", 3, 3)


def test_speaker_overlap_and_shard_assignment(tmp_path):
    entries = [
        {"clip_id": f"c{i}", "split": s, "speaker_id": spk, "n_frames": 10}
        for i, (s, spk) in enumerate([("train", "a"), ("train", "b"), ("test", "b"), ("val", "c"), ("test", "")])
    ]
    assign_shards(entries, 1)
    assert len({e["shard"] for e in entries}) == len(entries)  # shard ids unique across splits
    write_manifest(tmp_path, entries)
    assert ManifestIndex.open(tmp_path).speaker_overlap() == {"train/test": ["b"]}
