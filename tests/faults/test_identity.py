"""Evaluators with stable identities: the same weights get the same name and digest on every machine."""

from __future__ import annotations

import os

import pytest
import torch

from metrics import weights as store


def test_content_digest_ignores_the_container(tmp_path):
    sd = {"b": torch.arange(4.0), "a": {"w": torch.ones(2, 3, dtype=torch.float16)}, "n": 3, "s": torch.tensor(7)}
    torch.save(sd, tmp_path / "x.pt")
    torch.save(sd, tmp_path / f".calibrating{os.getpid()}.pt")  # torch.save writes the file name in the archive
    assert store.sha256_file(tmp_path / "x.pt") != store.sha256_file(tmp_path / f".calibrating{os.getpid()}.pt")
    assert store.file_content_digest(tmp_path / "x.pt") == store.content_digest(sd)
    assert store.file_content_digest(tmp_path / f".calibrating{os.getpid()}.pt") == store.content_digest(sd)
    changed = {**sd, "b": torch.arange(4.0) + 1e-7}
    assert store.content_digest(changed) != store.content_digest(sd)
    assert store.content_digest({**sd, "a": {"w": sd["a"]["w"].float()}}) != store.content_digest(sd)  # dtype counts


def test_registering_the_same_weights_in_two_homes_gives_one_name(tmp_path, monkeypatch):
    blob = {
        "config": {"arch": "small"},
        "state_dict": {"w": torch.randn(8, generator=torch.Generator().manual_seed(1))},
    }
    names = []
    for home in ("one", "two"):
        monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / home))
        entry = store.register_object(blob, "net-corpus-{content8}", "net", "calibrated", calibrated=True)
        names.append((entry.name, entry.identity))
    assert names[0] == names[1] and names[0][0] == f"net-corpus-{store.content_digest(blob)[:8]}"


@pytest.mark.parametrize("what", ["sync"])
def test_calibrating_twice_in_fresh_homes_gives_the_same_evaluator(tmp_path, monkeypatch, what):
    """`bench calibrate --what sync` in two fresh TALKBENCH_HOMEs (a step budget, the same seed): one name."""
    from benchmark.cli import main

    small = [
        "dataset.synth.n_clips=16",
        "dataset.synth.size=96",
        "dataset.synth.max_seconds=1.5",
        "metrics.calibrate.min_steps=15",
        "metrics.calibrate.max_steps=15",
        "run.progress=false",
    ]
    names = []
    for home in ("a", "b"):
        monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / home))
        assert main(["calibrate", "--dataset", "synthetic", *small, "--what", what]) == 0
        names.append(sorted(store.list_weights()))
    assert names[0] == names[1] and len(names[0]) == 1
