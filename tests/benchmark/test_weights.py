"""bench weights import: strict checks against the network, each official format, sha256 pinning."""

from pathlib import Path

import pytest
import torch

from benchmark.weights import import_weights
from metrics import weights as store

DATA = Path(__file__).resolve().parents[1] / "data_files"

TABLES = {
    "syncnet_v2": "syncnet_python_S_state_dict.tsv",
    "lipsync_expert": "wav2lip_SyncNet_color_state_dict.tsv",
    "wav2lip": "wav2lip_Wav2Lip_state_dict.tsv",
}


def state_dict_from_table(name: str) -> dict[str, torch.Tensor]:
    sd = {}
    for line in (DATA / name).read_text().splitlines()[1:]:
        key, shape, dtype = line.split("\t")
        dims = [int(s) for s in shape.strip("[]").split(",") if s.strip()]
        sd[key] = torch.zeros(dims, dtype=getattr(torch, dtype)) if dtype == "int64" else torch.randn(dims)
    return sd


@pytest.mark.parametrize("name", sorted(TABLES))
@pytest.mark.parametrize("form", ["raw", "wrapped", "module_prefix"])
def test_import_accepts_official_formats(tmp_path, name, form):
    sd = state_dict_from_table(TABLES[name])
    if form == "wrapped":
        obj = {"state_dict": sd, "global_step": 1, "global_epoch": 0}
    elif form == "module_prefix":
        obj = {"state_dict": {f"module.{k}": v for k, v in sd.items()}}
    else:
        obj = sd
    path = tmp_path / f"{name}.pth"
    torch.save(obj, path)
    entry = import_weights(path, name)
    assert entry.sha256 == store.sha256_file(path)
    resolved, _ = store.resolve(name)
    assert resolved.exists()


@pytest.mark.parametrize("name", sorted(TABLES))
def test_import_rejects_missing_and_misshaped_keys(tmp_path, name):
    sd = state_dict_from_table(TABLES[name])
    keys = [k for k in sd if k.endswith("weight")]
    missing = dict(sd)
    del missing[keys[0]]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(Exception, match=keys[0].replace(".", r"\.")):
        import_weights(tmp_path / "missing.pth", name)
    bad = dict(sd)
    bad[keys[1]] = torch.zeros(3, 3)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(Exception, match=keys[1].replace(".", r"\.")):
        import_weights(tmp_path / "bad.pth", name)


def test_resolve_detects_changed_file(tmp_path):
    sd = state_dict_from_table(TABLES["syncnet_v2"])
    path = tmp_path / "s.pth"
    torch.save(sd, path)
    entry = import_weights(path, "syncnet_v2")
    stored = store.weights_dir() / entry.file
    stored.write_bytes(stored.read_bytes()[:-10])
    with pytest.raises(store.WeightsError, match="sha256"):
        store.resolve("syncnet_v2")


def test_unknown_weights_name_suggests(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({}, path)
    with pytest.raises(KeyError, match="syncnet_v2"):
        import_weights(path, "syncnet_v3")
