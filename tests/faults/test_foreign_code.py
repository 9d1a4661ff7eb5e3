"""No foreign code through any door: every file from outside is read by the one checkpoint reader or without
pickle; a payload that would create a marker file when unpickled never runs (issue: numbers that can be trusted)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.cli import main


class Payload:
    """Unpickling this calls `open(marker, "w")`: the file appears exactly when foreign code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _payload_files(folder: Path, marker: Path) -> dict[str, Path]:
    """The same payload in each place a pickled checkpoint can hold it."""
    state = {"w": torch.zeros(2)}
    files = {}
    files["zip"] = folder / "zip.pth"
    torch.save({"state_dict": state, "hyper_parameters": {"x": Payload(marker)}}, files["zip"])
    files["legacy_body"] = folder / "legacy_body.pth"
    torch.save(
        {"state_dict": state, "extra": Payload(marker)}, files["legacy_body"], _use_new_zipfile_serialization=False
    )
    # the legacy stream starts with header records (magic number, protocol, system info), each a pickle of its own
    legacy = io.BytesIO()
    torch.save({"state_dict": state}, legacy, _use_new_zipfile_serialization=False)
    files["legacy_header"] = folder / "legacy_header.pth"
    files["legacy_header"].write_bytes(pickle.dumps(Payload(marker)) + legacy.getvalue())
    files["plain_pickle"] = folder / "plain.pkl"
    files["plain_pickle"].write_bytes(pickle.dumps(Payload(marker)))
    return files


@pytest.fixture
def doors(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))
    marker = tmp_path / "ran_foreign_code"
    return marker, _payload_files(tmp_path, marker)


@pytest.mark.parametrize("name", ["syncnet_v2", "lipsync_expert", "wav2lip", "diffused_heads_crema"])
def test_weights_import_never_runs_a_payload(doors, name):
    from benchmark.weights import import_weights

    marker, files = doors
    for kind, path in files.items():
        with pytest.raises(Exception, match=str(path.name).replace(".", r"\.")):
            import_weights(path, name)
        assert not marker.exists(), f"{kind}: foreign code ran"


def test_the_one_reader_returns_inert_placeholders(doors):
    from metrics.safe_load import CheckpointReadError, ForeignObject, load_checkpoint_file

    marker, files = doors
    payload, restricted = load_checkpoint_file(files["zip"])
    assert restricted and isinstance(payload["hyper_parameters"]["x"], ForeignObject)
    assert torch.equal(payload["state_dict"]["w"], torch.zeros(2))
    payload, restricted = load_checkpoint_file(files["legacy_body"])
    assert restricted and isinstance(payload["extra"], ForeignObject)
    for kind in ("legacy_header", "plain_pickle"):
        with pytest.raises(CheckpointReadError, match="not a readable checkpoint"):
            load_checkpoint_file(files[kind])
    assert not marker.exists()


def test_legacy_official_files_still_load(tmp_path):
    """syncnet_v2.model and wav2lip.pth were saved by old PyTorch in the legacy (non-zip) format."""
    from metrics.safe_load import load_checkpoint_file

    sd = {"netcnnaud.0.weight": torch.randn(3, 3), "netcnnaud.1.num_batches_tracked": torch.tensor(4)}
    torch.save(sd, tmp_path / "syncnet_v2.model", _use_new_zipfile_serialization=False)
    payload, restricted = load_checkpoint_file(tmp_path / "syncnet_v2.model")
    assert not restricted and torch.equal(payload["netcnnaud.0.weight"], sd["netcnnaud.0.weight"])


def test_generate_and_run_checkpoint_never_run_a_payload(doors, tmp_path):
    marker, files = doors
    face = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(face), np.full((96, 96, 3), 128, np.uint8))
    wav = tmp_path / "a.wav"
    from data.io import write_wav

    write_wav(wav, np.zeros(16000, np.float32))
    for path in files.values():
        args = ["generate", "--model", "wav2lip", "--face", str(face), "--audio", str(wav), "--checkpoint", str(path)]
        assert main([*args, "--out", str(tmp_path / "o.mp4"), "--detector", "full"]) == 2
        run = ["run", "--model", "wav2lip", "--preset", "tiny", f"run.checkpoint={path}", f"run.out_dir={tmp_path}"]
        assert main([*run, "run.progress=false"]) == 2
    assert not marker.exists()


def test_a_crafted_manifest_index_is_never_unpickled(tmp_path):
    from data.manifest import INDEX, ManifestIndex, write_manifest

    marker = tmp_path / "ran_foreign_code"
    entries = [
        {"clip_id": f"s{i}/c", "split": "train", "shard": 0, "n_frames": 10, "speaker_id": f"s{i}"} for i in range(3)
    ]
    write_manifest(tmp_path, entries)
    size = (tmp_path / "manifest.jsonl").stat().st_size
    evil = np.empty(1, dtype=object)
    evil[0] = Payload(marker)
    np.savez(tmp_path / INDEX, version=np.int64(2), size=np.int64(size), speaker_names=evil, offsets=np.zeros(3))
    index = ManifestIndex.open(tmp_path)  # the crafted index is refused and rebuilt from the manifest
    assert not marker.exists()
    assert len(index) == 3 and sorted(index.speaker_names) == ["s0", "s1", "s2"]
