"""`bench weights`: which official checkpoints the suite knows, importing them strictly, listing and verifying.

A name is the official file's stem (docs/checkpoints.md) so users recognise it. Import checks every key and shape
against the network the file is for before anything is registered.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.registry import import_target, suggest
from metrics import weights as store
from models.common.audio_frontends import SDA_FILE, SDA_HOW_TO_GET

FORMATS = ("state_dict", "checkpoint_dict", "lightning_ckpt", "torchscript")
KINDS = ("evaluator", "model")


@dataclass(frozen=True)
class KnownWeights:
    """An official checkpoint the suite knows. Fields after `how_to_get` have defaults so entries written with
    the first four positional fields keep working.

    file: the official file name; url: a direct download link ("" when there is none, e.g. Google Drive pages:
    `how_to_get` says what to do); sha256: the official file's sha256, or a prefix of it (torch-hub style names
    such as ``2DFAN4-11f355bf06`` carry one), "" when unknown; format: state_dict (a bare state dict) |
    checkpoint_dict (a training dict holding one, e.g. {"state_dict", "optimizer", ...} or mpc001's
    {"model_state_dict", ...}) | lightning_ckpt | torchscript; kind: evaluator | model; reader: "module:function"
    taking the path and returning the network's state dict (tensors only, weights_only=True).
    """

    network: str  # "module:factory" building the network the file must fit
    factory_args: tuple[Any, ...]
    what: str
    how_to_get: str
    file: str = ""
    url: str = ""
    sha256: str = ""
    format: str = "state_dict"
    kind: str = "model"
    reader: str = "models.checkpoints:load_official_state_dict"


KNOWN: dict[str, KnownWeights] = {
    "syncnet_v2": KnownWeights(
        "metrics.backbones.syncnet:build_sync_evaluator",
        ("syncnet_v2",),
        "syncnet_python SyncNet S: AV offset / confidence, LSE-D / LSE-C",
        "Get syncnet_v2.model with joonson/syncnet_python's download_model.sh, then "
        "`bench weights import syncnet_v2.model --as syncnet_v2`.",
        file="syncnet_v2.model",
        url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
        kind="evaluator",
    ),
    "sfd_face": KnownWeights(
        "data.faces.s3fd:S3FDNet",
        (),
        "syncnet_python's S3FD face detector (run_pipeline.py): the face tracks of metrics.sync.crop=tracked",
        "Get sfd_face.pth with joonson/syncnet_python's download_model.sh (detectors/s3fd/weights/), then "
        "`bench weights import sfd_face.pth --as sfd_face`.",
        file="sfd_face.pth",
        url="https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",
        kind="evaluator",
    ),
    "lipsync_expert": KnownWeights(
        "models.checkpoints:build_network",
        ("lipsync_expert",),
        "Wav2Lip's SyncNet_color lip-sync expert",
        "Get lipsync_expert.pth from the Wav2Lip README's checkpoint table, then "
        "`bench weights import lipsync_expert.pth --as lipsync_expert`.",
        file="lipsync_expert.pth",
        format="checkpoint_dict",
    ),
    "wav2lip": KnownWeights(
        "models.checkpoints:build_network",
        ("wav2lip",),
        "Wav2Lip generator",
        "Get wav2lip.pth from the Wav2Lip README, then `bench weights import wav2lip.pth --as wav2lip`.",
        file="wav2lip.pth",
        format="checkpoint_dict",
    ),
    "wav2lip_gan": KnownWeights(
        "models.checkpoints:build_network",
        ("wav2lip",),
        "Wav2Lip generator trained with the visual-quality discriminator",
        "Get wav2lip_gan.pth from the Wav2Lip README, then `bench weights import wav2lip_gan.pth --as wav2lip_gan`.",
        file="wav2lip_gan.pth",
        format="checkpoint_dict",
    ),
    "visual_quality_disc": KnownWeights(
        "models.wav2lip.gan:build_disc_qual",
        ("paper",),
        "Wav2Lip's visual-quality discriminator (Wav2Lip_disc_qual)",
        "Get visual_quality_disc.pth (linked from the Wav2Lip README until d07fc4d), then "
        "`bench weights import visual_quality_disc.pth --as visual_quality_disc`.",
        file="visual_quality_disc.pth",
        format="checkpoint_dict",
    ),
    "diffused_heads_crema": KnownWeights(
        "models.diffused_heads.checkpoints:crema_unet_layout",  # on the meta device: keys and shapes only
        (),
        "Diffused Heads UNet trained on CREMA (RGB motion frames): the train branch's non-scripted Lightning .ckpt "
        "or main's crema_script.pt (TorchScript); drive it with sda_audio_encoder",
        "Get the CREMA checkpoint linked from the diffused-heads README (train branch: the Lightning .ckpt; main: "
        "crema_script.pt in the Google Drive archive), then `bench weights import FILE --as diffused_heads_crema`.",
        format="lightning_ckpt",  # or torchscript (crema_script.pt); the import records the one found
        reader="models.diffused_heads.checkpoints:read_crema_unet",
    ),
    "sda_audio_encoder": KnownWeights(
        "models.common.audio_frontends:SDAContract",
        (),
        "Diffused Heads' SDA audio encoder (TorchScript; checked by its forward: a 3,200-sample window -> a 256-d "
        "embedding and the hidden state): the `sda` audio front end",
        SDA_HOW_TO_GET,
        file=SDA_FILE,
        format="torchscript",
        reader="models.common.audio_frontends:read_sda_encoder",
    ),
    # mpc001/Lipreading_using_Temporal_Convolutional_Networks Model Zoo: Google Drive / Baidu links only (no direct
    # download); the file names are the common downstream convention (docs/checkpoints.md)
    "lrw_resnet18_mstcn": KnownWeights(
        "metrics.backbones.lipreader:build_lipreader",
        ("lrw_resnet18_mstcn",),
        "LRW word lipreader ResNet-18 + MS-TCN (swish), 88.9 % top-1 on LRW: lipreader WER",
        "Download resnet18_mstcn_video from the Model Zoo of mpc001/Lipreading_using_Temporal_Convolutional_Networks "
        "(Google Drive https://bit.ly/3AQTFOG, Baidu https://bit.ly/3THgNrF key 0l63), then "
        "`bench weights import lrw_resnet18_mstcn_video.pth --as lrw_resnet18_mstcn`.",
        file="lrw_resnet18_mstcn_video.pth",
        format="checkpoint_dict",
        kind="evaluator",
        reader="metrics.backbones.lipreader:read_lipreader_state_dict",
    ),
    "lrw_resnet18_mstcn_prelu": KnownWeights(
        "metrics.backbones.lipreader:build_lipreader",
        ("lrw_resnet18_mstcn_prelu",),
        "LRW word lipreader ResNet-18 + MS-TCN (PReLU; the Model Zoo files before 2022-09, 85.5 % / 87.9 %)",
        "The older resnet18_mstcn / resnet18_mstcn(adamw_s3) files of mpc001's Model Zoo (commit 0c4160f README), "
        "then `bench weights import lrw_resnet18_mstcn_adamw_s3.pth.tar --as lrw_resnet18_mstcn_prelu`.",
        file="lrw_resnet18_mstcn_adamw_s3.pth.tar",
        format="checkpoint_dict",
        kind="evaluator",
        reader="metrics.backbones.lipreader:read_lipreader_state_dict",
    ),
    "pt_inception-2015-12-05-6726825d": KnownWeights(
        "metrics.backbones.inception:build_fid_inception",
        ("tf1",),
        "FID InceptionV3 (TF inception-2015-12-05 ported by pytorch-fid / torch-fidelity): fid_tf1, fid_aa",
        "Download https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth (or torch-fidelity's weights-inception-2015-12-05-6726825d.pth), then "
        "`bench weights import pt_inception-2015-12-05-6726825d.pth --as pt_inception-2015-12-05-6726825d`.",
        file="pt_inception-2015-12-05-6726825d.pth",
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        # the name's 6726825d looks like a torch.hub sha256 prefix, but no loader ever checks it: not asserted here
        kind="evaluator",
        reader="metrics.backbones.inception:read_evaluator_state_dict",
    ),
    "i3d_pretrained_400": KnownWeights(
        "metrics.backbones.i3d:build_i3d",
        (),
        "I3D Kinetics-400 (TF-Hub i3d-kinetics-400/1 converted by VideoGPT/TATS, piergiaj layout): fvd_16f",
        "Get i3d_pretrained_400.pt (VideoGPT's Google Drive id 1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT, or "
        "https://github.com/songweige/TATS/raw/main/tats/fvd/i3d_pretrained_400.pt), then "
        "`bench weights import i3d_pretrained_400.pt --as i3d_pretrained_400`.",
        file="i3d_pretrained_400.pt",
        url="https://github.com/songweige/TATS/raw/main/tats/fvd/i3d_pretrained_400.pt",
        kind="evaluator",
        reader="metrics.backbones.inception:read_evaluator_state_dict",
    ),
    "i3d_torchscript": KnownWeights(
        "metrics.backbones.i3d:TorchScriptI3DContract",
        (),
        "I3D Kinetics-400 TorchScript of StyleGAN-V (same TF-Hub model; checked by its forward, 400-d output): fvd_16f",
        "Download https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1 (StyleGAN-V), then "
        "`bench weights import i3d_torchscript.pt --as i3d_torchscript`.",
        file="i3d_torchscript.pt",
        url="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
        format="torchscript",
        kind="evaluator",
        reader="metrics.backbones.i3d:read_torchscript_i3d",
    ),
}


class UnofficialWeightsError(store.WeightsError):
    """A file imported under an official name whose sha256 is not the official file's."""


def _sha_matches(known: str, digest: str) -> bool | None:
    """True / False when the official sha256 (or its prefix) is known, None when it is not."""
    return digest.startswith(known.lower()) if known else None


def _state_dict_of(name: str, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    known = KNOWN[name]
    sd = import_target(known.reader)(path)
    fmt = getattr(sd, "format", "") or known.format
    return sd, fmt


def check_file(path: Path, name: str) -> tuple[str, str]:
    """Check `path` strictly against the network `name` is for (keys, shapes; read with weights_only=True, never
    unpickling foreign classes); returns (format found, sha256). Raises with the file and the problem."""
    if name not in KNOWN:
        raise suggest("weights name", name, KNOWN)
    path = Path(path)
    if not path.is_file():
        raise store.WeightsError(f"{path}: no such weights file")
    from models.checkpoints import check_state_dict

    known = KNOWN[name]
    net = import_target(known.network)(*known.factory_args)
    try:
        sd, fmt = _state_dict_of(name, path)
    except (ValueError, OSError) as err:
        raise store.WeightsError(f"{path}: cannot be imported as {name}: {err}") from err
    check_state_dict(net, sd, source=str(path))
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise store.WeightsError(
            f"{path}: {len(bad)} tensors hold NaN or infinite values (first: {', '.join(bad[:3])}); a damaged or "
            "diverged file is not imported"
        )
    return fmt, store.sha256_file(path)


def import_weights(path: Path, name: str, *, allow_unofficial: bool = False) -> store.WeightsEntry:
    """Strict-check `path` against the network `name` is for, then register it with its sha256.

    When the official sha256 is known and the file's differs, the import is refused (it is not the file the
    published numbers were computed with) unless `allow_unofficial`; the entry then records the mismatch."""
    fmt, digest = check_file(path, name)
    known = KNOWN[name]
    official = _sha_matches(known.sha256, digest)
    if official is False and not allow_unofficial:
        raise UnofficialWeightsError(
            f"{path}: sha256 {digest[:16]}... is not the official {known.file or name} ({known.sha256[:16]}...); "
            "a re-saved or different file. Import it anyway with --allow-unofficial (results then say so)."
        )
    label = {True: "official", False: "unofficial copy", None: "imported, unverified"}[official]
    source = f"{label} ({Path(path).name})"
    meta = {"format": fmt, "kind": known.kind, "official_sha256": known.sha256 or None, "sha256_official": official}
    return store.register_file(path, name, network=name, source=source, meta=meta)


def fetch(name: str, url: str | None = None, timeout: float = 30.0) -> store.WeightsEntry:
    """Download the official file of `name` (or `url`), check its sha256 when known, then import it.

    Offline, or for files without a direct link, raises WeightsError saying how to get the file by hand."""
    import urllib.error
    import urllib.request

    if name not in KNOWN:
        raise suggest("weights name", name, KNOWN)
    known = KNOWN[name]
    url = url or known.url
    if not url:
        raise store.WeightsError(f"{name}: no direct download link is known. {known.how_to_get}")
    # downloaded beside the store, never into it: the import copies the checked file in under its registered name
    downloads = store.weights_dir() / f".downloads-{os.getpid()}"
    downloads.mkdir(parents=True, exist_ok=True)
    tmp = downloads / f"{name}.part"
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise store.WeightsError(
                f"cannot download {name} from {url} ({reason}). No network? Get {known.file or 'the file'} on a "
                f"machine that has one and run `bench weights import FILE --as {name}`."
            ) from err
        digest = store.sha256_file(tmp)
        if _sha_matches(known.sha256, digest) is False:
            raise store.WeightsError(
                f"downloaded {name} from {url}: sha256 {digest[:16]}... does not match the official "
                f"{known.sha256[:16]}...; the download is corrupt or the file changed. Nothing was registered."
            )
        final = tmp.with_name(known.file or f"{name}.pt")
        os.replace(tmp, final)
        tmp = final
        return import_weights(final, name)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)


def how_to_get(name: str) -> str:
    return KNOWN[name].how_to_get if name in KNOWN else ""


def status_rows() -> list[dict[str, Any]]:
    """One row per known official checkpoint and per other registered file: name, kind, format, present,
    file, where it is (or where to put it and how to get it)."""
    entries = store.list_weights()
    rows: list[dict[str, Any]] = []
    for name, k in KNOWN.items():
        e = entries.get(name)
        row: dict[str, Any] = {
            "name": name,
            "kind": k.kind,
            "format": k.format,
            "what": k.what,
            "file": k.file,
            "url": k.url,
        }
        if e is not None:
            path = store.weights_dir() / e.file
            row.update(present=path.exists(), path=str(path), sha256=e.sha256, source=e.source)
        else:
            row.update(present=False, path=None, sha256=k.sha256 or None, source=None)
            row["get"] = (f"`bench weights fetch {name}` (downloads {k.url}); or " if k.url else "") + k.how_to_get
        rows.append(row)
    for name, e in sorted(entries.items()):
        if name in KNOWN:
            continue
        path = store.weights_dir() / e.file
        rows.append(
            {
                "name": name,
                "kind": "evaluator" if e.calibrated else "model",
                "format": e.meta.get("format", "state_dict"),
                "what": e.network,
                "file": e.file,
                "present": path.exists(),
                "path": str(path),
                "sha256": e.sha256,
                "source": "calibrated here: " + e.source if e.calibrated else e.source,
            }
        )
    return rows


def format_list() -> str:
    rows = status_rows()
    lines = [f"weights store: {store.weights_dir()}"]
    present = [r for r in rows if r["present"]]
    missing = [r for r in rows if not r["present"]]
    lines.append(f"present ({len(present)}):")
    for r in present:
        lines.append(f"  {r['name']:36s} {r['kind']:9s} {r['format']:15s} sha256 {r['sha256'][:16]}  {r['source']}")
    if not present:
        lines.append("  (nothing registered)")
    if missing:
        lines.append(f"missing ({len(missing)}): put the official file anywhere and import it (checked, then copied)")
        for r in missing:
            file = r["file"] or "(official file)"
            lines.append(f"  {r['name']:36s} {r['kind']:9s} {r['format']:15s} {file}: {r['what']}")
            if r.get("get"):
                lines.append(f"  {'':36s} -> {r['get']}")
            elif r["path"]:
                lines.append(f"  {'':36s} -> registered file {r['path']} is gone: import it again")
    return "\n".join(lines)


def verify(names: list[str]) -> list[str]:
    """Re-check registered files: sha256 against the registry, and against the official sha256 when known."""
    entries = store.list_weights()
    out = []
    for name in names or sorted(entries):
        try:
            path, entry = store.resolve(name, how_to_get(name))
        except store.WeightsError as err:
            out.append(f"FAILED  {err}")
            continue
        official = _sha_matches(KNOWN[name].sha256, entry.sha256) if name in KNOWN else None
        if official is False:
            out.append(
                f"FAILED  {name}: {path} sha256 {entry.sha256[:16]} is not the official file's "
                f"({KNOWN[name].sha256[:16]}...)"
            )
        else:
            note = " (official sha256)" if official else ""
            out.append(f"ok      {name}  {path}  sha256 {entry.sha256[:16]}{note}")
    return out
