"""Shared test set-up: an isolated TALKBENCH_HOME, and a small synthetic corpus written once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA_FILES = Path(__file__).resolve().parent / "data_files"


@pytest.fixture(scope="session", autouse=True)
def talkbench_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("talkbench_home")
    os.environ["TALKBENCH_HOME"] = str(home)
    return home


@pytest.fixture(autouse=True)
def rehearsal_threads(request):
    """The rehearsal tier runs paper-size networks: every core, whatever thread count other test modules set at
    import (some pin one thread for bit-exact comparisons)."""
    if request.node.get_closest_marker("rehearsal") is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def small_corpus_cfg() -> dict:
    """A corpus big enough for the end-to-end loop, small enough to write in seconds."""
    return {"seed": 3, "n_speakers": 4, "n_clips": 24, "size": 96, "min_seconds": 1.2, "max_seconds": 1.8}


class ClipsCorpus:
    """A corpus made of the given clips (what calibration reads of one): the first `n_train` clips are its train
    split, the rest every other split; `tag` keeps the fingerprints of different tests apart."""

    name = "synthetic"
    root = "nowhere"

    def __init__(self, clips, n_train: int, tag: str):
        self._clips, self._n_train, self._tag = clips, n_train, tag

    def clips(self, split):
        return self._clips[: self._n_train] if split == "train" else self._clips[self._n_train :]

    def fingerprint(self):
        return {"dataset": "synthetic", "clips": self._tag}


@pytest.fixture
def clips_corpus():
    """`clips_corpus(clips, n_train, tag)`: a ClipsCorpus."""
    return ClipsCorpus


@pytest.fixture(scope="session")
def calibration_splits() -> dict[str, list]:
    """The slow calibration tests' corpus (seed 0, 104 clips), rendered once: 60 train clips, all val and test."""
    from data.synthetic.generator import SyntheticConfig, make_corpus_spec, render_clip

    spec = make_corpus_spec(SyntheticConfig(seed=0, n_clips=104))
    by_split: dict[str, list[int]] = {}
    for cs in spec.clips:
        by_split.setdefault(cs.split, []).append(cs.index)
    return {
        "train": [render_clip(spec, i) for i in by_split["train"][:60]],
        "val": [render_clip(spec, i) for i in by_split["val"]],
        "test": [render_clip(spec, i) for i in by_split["test"]],
    }
