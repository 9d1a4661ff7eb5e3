"""Generation of a test split: batched across clips of equal length, the same videos as one clip at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from benchmark.config import compose
from benchmark.generation import generate_batch, generate_split, generation_batches
from benchmark.train import build_untrained
from data.io import read_video

GENERATORS = ["wav2lip", "wav2lip_gan", "lipgan", "diffused_heads", "vasa", "static"]


class _Clip:
    def __init__(self, clip_id: str, video: np.ndarray, audio: np.ndarray) -> None:
        self.clip_id, self.video, self.audio = clip_id, video, audio
        self.num_frames, self.speaker_id = len(video), clip_id.split("/")[0]


def _clips(lengths: list[int]) -> list[_Clip]:
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(seed=4, n_speakers=4, n_clips=len(lengths), size=96, min_seconds=1.0))
    out = []
    for i, t in enumerate(lengths):
        c = render_clip(spec, i)
        out.append(_Clip(f"spk{i % 3}/c{i}", np.asarray(c.video[:t]), c.audio[: t * 640]))
    return out


def test_batches_group_equal_lengths_in_list_order():
    clips = _clips([20, 25, 20, 20, 25, 20])
    assert generation_batches(clips, 2) == [[0, 2], [1, 4], [3, 5]]
    assert generation_batches(clips, 8) == [[0, 2, 3, 5], [1, 4]]
    assert generation_batches(clips, 1) == [[i] for i in range(6)]


@pytest.mark.parametrize("name", GENERATORS)
def test_batched_generation_equals_one_clip_at_a_time(name):
    """Clip i is made with seed run.seed + i whatever it is batched with: the same frames up to the rounding of
    batched kernels (at most one grey level, on a tiny share of pixels)."""
    cfg = compose(name, "synthetic", "tiny", ["run.seed=3"])
    torch.manual_seed(0)
    module = build_untrained(cfg).eval()
    clips = _clips([20, 20, 20])
    together = generate_batch(module, clips, [0, 1, 2], cfg)
    alone = [generate_batch(module, clips, [i], cfg)[0] for i in range(3)]
    for a, b in zip(together, alone):
        assert a.shape == b.shape == (20, 96, 96, 3)
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    if name in ("diffused_heads", "vasa"):  # sampled models: each clip has its own noise
        assert not np.array_equal(together[0], together[1])


def test_generate_split_writes_every_clip_and_resumes(tmp_path):
    cfg = compose("static", "synthetic", "tiny", ["run.generate_batch_size=2"])
    module = build_untrained(cfg)
    clips = _clips([12, 15, 12, 12])
    stamp = {"weights": "x"}
    videos = generate_split(cfg, module, clips, tmp_path / "generated", progress=False, stamp=stamp)
    assert sorted(videos) == sorted(c.clip_id for c in clips)
    assert [len(read_video(videos[c.clip_id])) for c in clips] == [12, 15, 12, 12]
    # an interrupted generation keeps finished clips made by the same weights
    victim = videos[clips[1].clip_id]
    victim.unlink()
    before = videos[clips[0].clip_id].stat().st_mtime_ns
    generate_split(cfg, module, clips, tmp_path / "generated", progress=False, stamp=stamp)
    assert victim.exists() and videos[clips[0].clip_id].stat().st_mtime_ns == before
    # other weights: everything is made again
    generate_split(cfg, module, clips, tmp_path / "generated", progress=False, stamp={"weights": "y"})
    assert videos[clips[0].clip_id].stat().st_mtime_ns != before


def test_unknown_pose_prior_is_refused(tmp_path):
    cfg = compose("static", "synthetic", "tiny")
    cfg = OmegaConf.merge(cfg, {"run": {"pose_prior": "guess"}})
    with pytest.raises(ValueError, match="pose_prior"):
        generate_split(cfg, build_untrained(cfg), _clips([5]), tmp_path, progress=False)
