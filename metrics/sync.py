"""SyncNet scores as a clip metric: AV offset, AV confidence (syncnet_python) and LSE-D, LSE-C (Wav2Lip).

One pass of the syncnet_python algorithm (`metrics.functional.sync`) per generated clip with its audio gives
all four numbers. ``av_conf`` and ``lse_c`` are the same per-clip value (Wav2Lip's LSE-C is syncnet_python's
confidence averaged over videos); both names are reported because the two literatures use both. ``lse_d`` is
syncnet_python's "min dist". Their scale depends on the evaluator: raw 1024-d embeddings for syncnet_v2 (S),
unit vectors (distances in [0, 2]) for the calibrated small evaluator, so results are comparable only for the
same evaluator weights (recorded in ``evaluator_info``).

Which network scores (`metrics.sync.evaluator`): a registered weights name; `auto` = the official syncnet_v2, on
any corpus (an error when it is not imported: a stand-in calibrated for minutes on the corpus itself must be
chosen knowingly); `calibrated` = the SyncNet calibrated on the corpus being scored. A corpus whose faces
syncnet_v2 never saw chooses `calibrated` in its dataset config (configs/datasets/synthetic.yaml `metrics:`), so
that choice is recorded with the settings. A calibrated evaluator that does not exist yet is trained first by
`bench calibrate --what sync` (the runner does it: `calibration_needed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from metrics import weights as store
from metrics.base import ClipMetric, ClipScoreError, EvalSample
from metrics.functional.sync import BATCH_SIZE, VSHIFT, check_crop, sync_scores

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus

OFFICIAL = "syncnet_v2"
#: network-name prefix of SyncNets calibrated on a corpus (benchmark.calibrate registers them)
CALIBRATED_PREFIX = "sync_eval_"
#: the benchmark.calibrate.CALIBRATORS entry that trains one
CALIBRATION = "sync"
HOW_TO_GET = (
    "Get syncnet_v2.model with joonson/syncnet_python's download_model.sh, then "
    "`bench weights import syncnet_v2.model --as syncnet_v2`."
)


def resolve_sync_evaluator(choice: str, corpus: LayoutCorpus | None) -> str | None:
    """The registered weights name `metrics.sync.evaluator: choice` stands for on `corpus` (see the module doc);
    None when it is a calibration of this corpus that does not exist yet."""
    if choice not in ("auto", "calibrated"):
        return choice
    if choice == "auto":
        if OFFICIAL in store.list_weights():
            return OFFICIAL
        where = f"corpus {corpus.name!r}" if corpus is not None else "this corpus"
        raise store.WeightsError(
            f"scoring lip-sync on {where} needs the official SyncNet, which is not imported. {HOW_TO_GET} "
            "Or opt into a SyncNet calibrated on the corpus itself with metrics.sync.evaluator=calibrated: its "
            "numbers are marked as calibrated in every table and cannot be compared with published syncnet_v2 ones."
        )
    if corpus is None:
        return None
    entry = store.find_calibrated(corpus.fingerprint(), CALIBRATED_PREFIX)
    return entry.name if entry is not None else None


def load_sync_network(name: str) -> tuple[nn.Module, dict[str, Any]]:
    """The evaluator network registered as `name` (syncnet_v2 or a calibrated one) and what identifies it."""
    from metrics.backbones.syncnet import build_sync_evaluator, load_sync_evaluator_state, sync_evaluator_from_config

    path, entry = store.resolve(name, HOW_TO_GET if name == OFFICIAL else "")
    if entry.calibrated:
        blob, _ = store.load(name)
        net = sync_evaluator_from_config(blob["config"])
        load_sync_evaluator_state(net, blob["state_dict"], source=str(path))
    else:
        from metrics.backbones.inception import read_evaluator_state_dict

        net = build_sync_evaluator(OFFICIAL)
        load_sync_evaluator_state(net, read_evaluator_state_dict(path), source=str(path))
    info = {
        "name": entry.name,
        "sha256": entry.sha256,
        "content_sha256": entry.identity,
        "network": entry.network,
        "calibrated": entry.calibrated,
        "status": entry.status,
        "source": entry.source,
    }
    return net.eval(), info


class SyncNetScores(ClipMetric):
    """Per-clip (av_offset, av_conf, lse_d, lse_c) of ``EvalSample.fake`` against ``EvalSample.audio``.

    evaluator: a registered weights name, `auto` or `calibrated` (module doc), resolved on `corpus`; or a SyncNet
    module with the `metrics.backbones.syncnet` interface (tests, custom evaluators), then described by
    weights_name / weights_sha256. It is kept in eval mode without gradients. crop: "wholeframe" (Wav2Lip's LRS
    protocol: every frame resized to 224x224); vshift, batch_size: the syncnet_python defaults 15 and 20; device:
    where the evaluator runs (None: where it already is). Clips with fewer than 6 frames of video or audio, or
    without audio, are counted as failures.
    """

    outputs = ("av_offset", "av_conf", "lse_d", "lse_c")
    higher_is_better = None  # outputs differ (LSE-D lower, LSE-C higher, AV offset to GT): METRICS has each
    config_section = "sync"  # configs/metrics/default.yaml section holding its settings
    needs_corpus = True  # `auto` / `calibrated` depend on the corpus being scored
    evaluator_key = "syncnet"

    def __init__(
        self,
        evaluator: nn.Module | str = "auto",
        *,
        corpus: LayoutCorpus | None = None,
        crop: str = "wholeframe",
        vshift: int = VSHIFT,
        batch_size: int = BATCH_SIZE,
        device: str | None = None,
        weights_name: str | None = None,
        weights_sha256: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.crop = check_crop(crop)
        if vshift < 1 or batch_size < 1:
            raise ValueError(f"vshift and batch_size must be >= 1, got {vshift} and {batch_size}")
        self.vshift, self.batch_size = int(vshift), int(batch_size)
        if isinstance(evaluator, str):
            name = resolve_sync_evaluator(evaluator, corpus)
            if name is None:
                raise store.WeightsError(
                    f"no evaluation SyncNet calibrated on corpus {getattr(corpus, 'name', '?')!r}: run "
                    f"`bench calibrate --what {CALIBRATION}` (the runner does it before scoring)"
                )
            evaluator, weights = load_sync_network(name)
        else:
            status = getattr(evaluator, "evaluator_status", "unverified")
            weights = {"name": weights_name, "sha256": weights_sha256, "status": status}
        if device is not None:
            evaluator = evaluator.to(device)
        evaluator.eval().requires_grad_(False)
        self.evaluator = evaluator
        config = getattr(evaluator, "evaluator_config", None) or {"arch": type(evaluator).__name__, "kwargs": {}}
        self.evaluator_info = {
            **weights,
            "arch": config["arch"],
            "kwargs": dict(config.get("kwargs", {})),
            "weights": weights["name"],
            "crop": self.crop,
            "vshift": self.vshift,
        }

    @classmethod
    def calibration_needed(cls, settings: dict[str, Any], corpus: LayoutCorpus) -> str | None:
        """`sync` when the configured evaluator is a calibration of `corpus` that does not exist yet (raises,
        before anything runs, when a real corpus would silently fall back to a calibrated stand-in)."""
        choice = settings.get("evaluator", "auto")
        if isinstance(choice, str) and resolve_sync_evaluator(choice, corpus) is None:
            return CALIBRATION
        return None

    def train(self, mode: bool = True) -> SyncNetScores:
        # Lightning toggles train/eval on every module it owns; the evaluator's BatchNorm must stay frozen
        super().train(mode)
        self.evaluator.eval()
        return self

    def score_clip(self, sample: EvalSample) -> tuple[float, float, float, float]:
        if sample.audio is None:
            raise ClipScoreError("SyncNet scores need the clip's audio")
        res = sync_scores(
            self.evaluator, sample.fake, sample.audio, crop=self.crop, vshift=self.vshift, batch_size=self.batch_size
        )
        return float(res.offset), res.conf, res.min_dist, res.conf
