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


# ------------------------------------------------------------------ lipreader checkpoints, list / verify / fetch


@pytest.fixture
def fresh_store(tmp_path, monkeypatch):
    """An empty weights store for this test (the session store holds other tests' imports)."""
    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))


LIPREADER_TABLES = {
    "lrw_resnet18_mstcn": "lrw_lipreader_resnet18_mstcn_state_dict.tsv",
    "lrw_resnet18_mstcn_prelu": "lrw_lipreader_resnet18_mstcn_prelu_state_dict.tsv",
}


def test_import_mpc001_lipreader_checkpoint(tmp_path, fresh_store):
    # the PReLU table's strict load is in tests/metrics/test_lipreader.py; here the import path end to end
    name = "lrw_resnet18_mstcn"
    sd = {k: torch.zeros_like(v) for k, v in state_dict_from_table(LIPREADER_TABLES[name]).items()}
    sd["tcn.tcn_output.bias"] = torch.arange(500, dtype=torch.float32)
    path = tmp_path / "ckpt.best.pth"
    torch.save({"epoch_idx": 3, "model_state_dict": sd}, path)  # mpc001's CheckpointSaver layout
    entry = import_weights(path, name)
    # no official sha256 is pinned for the Model Zoo files: imported, but unverified (marked in tables)
    assert entry.meta["kind"] == "evaluator" and entry.source.startswith("imported, unverified")
    from metrics.wer import load_lipreader

    net, info = load_lipreader(name)
    assert info["status"] == "unverified" and info["sha256"] == store.sha256_file(path)
    assert len(net.cfg.labels) == 500
    assert torch.equal(net.state_dict()["tcn.tcn_output.bias"], sd["tcn.tcn_output.bias"])


def test_import_refuses_prelu_file_as_swish_model(tmp_path, fresh_store):
    path = tmp_path / "old.pth.tar"
    torch.save({"model_state_dict": state_dict_from_table(LIPREADER_TABLES["lrw_resnet18_mstcn_prelu"])}, path)
    with pytest.raises(Exception, match=r"old\.pth\.tar.*unexpected keys"):
        import_weights(path, "lrw_resnet18_mstcn")
    assert "lrw_resnet18_mstcn" not in store.list_weights()


def test_list_shows_present_and_missing_with_where_to_get(tmp_path, fresh_store):
    from benchmark.weights import KNOWN, format_list, status_rows

    path = tmp_path / "s.model"
    torch.save(state_dict_from_table(TABLES["syncnet_v2"]), path)
    import_weights(path, "syncnet_v2")
    rows = {r["name"]: r for r in status_rows()}
    assert set(KNOWN) <= set(rows)
    assert rows["syncnet_v2"]["present"] and rows["syncnet_v2"]["path"].endswith(".model")
    assert not rows["lrw_resnet18_mstcn"]["present"] and "bit.ly" in rows["lrw_resnet18_mstcn"]["get"]
    text = format_list()
    present, missing = text.split("missing (")
    assert "syncnet_v2" in present and "wav2lip_gan" in missing and "bench weights fetch syncnet_v2" not in text


def _fake_known(monkeypatch, url: str, sha: str):
    import dataclasses

    from benchmark import weights as bw

    entry = dataclasses.replace(bw.KNOWN["syncnet_v2"], url=url, sha256=sha, file="syncnet_v2.model")
    monkeypatch.setitem(bw.KNOWN, "syncnet_v2", entry)
    return bw


def test_fetch_checks_sha256_and_registers(tmp_path, monkeypatch, fresh_store):
    src = tmp_path / "mirror.model"
    torch.save(state_dict_from_table(TABLES["syncnet_v2"]), src)
    digest = store.sha256_file(src)
    bw = _fake_known(monkeypatch, src.as_uri(), "0" * 64)
    with pytest.raises(store.WeightsError, match="does not match the official.*Nothing was registered"):
        bw.fetch("syncnet_v2")
    assert "syncnet_v2" not in store.list_weights()
    bw = _fake_known(monkeypatch, src.as_uri(), digest[:10])  # a torch-hub style prefix is enough
    entry = bw.fetch("syncnet_v2")
    assert entry.sha256 == digest and entry.meta["sha256_official"] is True
    assert bw.verify(["syncnet_v2"])[0].startswith("ok") and "official sha256" in bw.verify(["syncnet_v2"])[0]


def test_fetch_offline_and_without_url_give_clear_errors(tmp_path, monkeypatch, fresh_store):
    bw = _fake_known(monkeypatch, (tmp_path / "absent.model").as_uri(), "")
    with pytest.raises(store.WeightsError, match=r"cannot download syncnet_v2 .*bench weights import FILE --as"):
        bw.fetch("syncnet_v2")
    with pytest.raises(store.WeightsError, match="no direct download link.*bit.ly"):
        bw.fetch("lrw_resnet18_mstcn")


def test_unofficial_sha_is_refused_unless_allowed_and_verify_flags_it(tmp_path, monkeypatch, fresh_store):
    path = tmp_path / "s.model"
    torch.save(state_dict_from_table(TABLES["syncnet_v2"]), path)
    bw = _fake_known(monkeypatch, "", "ab" * 32)
    with pytest.raises(bw.UnofficialWeightsError, match="allow-unofficial"):
        bw.import_weights(path, "syncnet_v2")
    entry = bw.import_weights(path, "syncnet_v2", allow_unofficial=True)
    assert entry.source.startswith("unofficial") and entry.meta["sha256_official"] is False
    assert bw.verify(["syncnet_v2"])[0].startswith("FAILED")


def test_verify_cli_exit_code(tmp_path, fresh_store):
    from benchmark.cli import main

    path = tmp_path / "s.model"
    torch.save(state_dict_from_table(TABLES["syncnet_v2"]), path)
    assert main(["weights", "import", str(path), "--as", "syncnet_v2"]) == 0
    assert main(["weights", "verify", "syncnet_v2"]) == 0
    stored = store.weights_dir() / store.list_weights()["syncnet_v2"].file
    stored.write_bytes(stored.read_bytes()[:-4])
    assert main(["weights", "verify", "syncnet_v2"]) == 1


# ------------------------------------------------------------------ Diffused Heads: the CREMA UNet and the SDA encoder


def _dh_views(table: str) -> dict[str, torch.Tensor]:
    """The full-size UNet's tensors as views of one small shared storage (a 40 MB file instead of 860 MB)."""
    import math

    shapes = {}
    for line in (DATA / table).read_text().splitlines()[1:]:
        key, shape, _ = line.split("\t")
        shapes[key] = [int(s) for s in shape.strip("[]").split(",") if s.strip()]
    base = torch.randn(max(math.prod(s) for s in shapes.values()))
    return {k: base[: math.prod(s)].view(s) for k, s in shapes.items()}


def _official_ckpt(path: Path, sd: dict, foreign: bool) -> Path:
    """LightningDiffusion's checkpoint layout: one UNet under `unet.` and `diffusion.nn_backbone.`."""
    import sys
    import types

    hparams = {"model_channels": 256, "grayscale_motion": False, "n_motion_frames": 2, "lr": 5e-5}
    fake = types.ModuleType("torchvision_fake_transforms")

    class Compose:
        def __init__(self, transforms):
            self.transforms = transforms

    Compose.__module__, Compose.__qualname__ = fake.__name__, "Compose"
    if foreign:  # train.py pickles a torchvision Compose in hyper_parameters
        hparams["motion_transforms"] = Compose([])
    payload = {
        "pytorch-lightning_version": "1.9.0",
        "state_dict": {
            **{f"unet.{k}": v for k, v in sd.items()},
            **{f"diffusion.nn_backbone.{k}": v for k, v in sd.items()},
        },
        "hyper_parameters": hparams,
    }
    sys.modules[fake.__name__] = fake
    fake.Compose = Compose
    try:
        torch.save(payload, path)
    finally:
        del sys.modules[fake.__name__]
    return path


@pytest.mark.parametrize("foreign", [False, True])
def test_import_official_crema_lightning_ckpt(tmp_path, fresh_store, foreign):
    path = _official_ckpt(tmp_path / "crema.ckpt", _dh_views("diffused_heads_UNet_rgbmotion_state_dict.tsv"), foreign)
    if not foreign:
        torch.load(path, weights_only=True)  # tensors and plain containers only: the strict-loader path
    entry = import_weights(path, "diffused_heads_crema")
    assert entry.meta["format"] == "official_lightning" and entry.sha256 == store.sha256_file(path)


def test_import_crema_script_pt(tmp_path, fresh_store):
    from models.diffused_heads.nets import DiffusedHeadsUNet, UNetConfig

    with torch.device("meta"):
        net = DiffusedHeadsUNet(UNetConfig(grayscale_motion=False))
    net.load_state_dict(_dh_views("diffused_heads_UNet_rgbmotion_state_dict.tsv"), assign=True)
    path = tmp_path / "crema_script.pt"
    torch.jit.script(net).save(str(path))  # main branch's TorchScript UNet
    assert import_weights(path, "diffused_heads_crema").meta["format"] == "torchscript"


def test_import_crema_refuses_the_grayscale_unet(tmp_path, fresh_store):
    path = _official_ckpt(tmp_path / "gray.ckpt", _dh_views("diffused_heads_UNet_state_dict.tsv"), False)
    with pytest.raises(Exception, match=r"gray\.ckpt.*input_blocks\.0\.0\.weight: expected \(256, 12, 3, 3\)"):
        import_weights(path, "diffused_heads_crema")
    assert "diffused_heads_crema" not in store.list_weights()


def _sda_file(path: Path, dim: int = 256) -> Path:
    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3200, dim)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor, init_state: torch.Tensor):
            return self.proj(x[:, 0]), lengths, init_state * 0.5

    torch.jit.script(Encoder()).save(str(path))
    return path


def test_import_sda_audio_encoder_checks_its_forward(tmp_path, fresh_store):
    from benchmark.weights import KNOWN, how_to_get

    entry = import_weights(_sda_file(tmp_path / "audio_encoder.pt"), "sda_audio_encoder")
    assert entry.meta["format"] == "torchscript" and KNOWN["sda_audio_encoder"].file == "audio_encoder.pt"
    assert "bench weights import audio_encoder.pt --as sda_audio_encoder" in how_to_get("sda_audio_encoder")
    with pytest.raises(Exception, match=r"wrong\.pt: not the SDA audio encoder.*not 256-d"):
        import_weights(_sda_file(tmp_path / "wrong.pt", dim=128), "sda_audio_encoder")
    with pytest.raises(Exception, match=r"crema\.ckpt.*not a TorchScript archive"):
        torch.save({"w": torch.zeros(1)}, tmp_path / "crema.ckpt")
        import_weights(tmp_path / "crema.ckpt", "sda_audio_encoder")
