"""CAPP-style audio-pose alignment score (VASA-1 section 4.2), trainable on any corpus with landmarks.

VASA-1 scores a generated clip by how well its head poses match its audio, with a pose-sequence encoder and an
audio encoder trained CLIP-style on 2k hours of talking video. No CAPP weights were released: the network
(`metrics.backbones.capp`) is calibrated on the corpus being scored (`metrics.calibration.capp`, `bench calibrate
--what capp`) and registered in the weights store as `capp-<corpus>-<sha8>`. Functional core:
`metrics.functional.pose`; head angles from landmarks: `metrics.functional.headpose.head_angles`.

Value of a clip: the mean over its windows (window frames, every hop frames) of the cosine between the pose and
audio embeddings; higher = poses more like the ones that go with this audio. A clip shorter than one window cannot
be scored (counted in n_failed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from metrics.backbones.capp import CAPP_NETWORK, CappNet, capp_from_blob
from metrics.base import ClipScoreError, EvalSample
from metrics.functional.headpose import head_angles
from metrics.landmarks import LandmarkClipMetric
from metrics.safe_load import load_checkpoint_file

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus
    from metrics.weights import WeightsEntry


def store_find_capp(corpus: LayoutCorpus | None, calibrate: dict[str, Any] | None = None) -> WeightsEntry | None:
    """The newest CAPP calibrated on `corpus` whose model settings match `calibrate` (a CappConfig subset), if any."""
    from metrics import weights as store

    if corpus is None:
        return None
    want = {k: v for k, v in (calibrate or {}).items() if k not in ("seconds", "max_steps")}
    matches = [
        e
        for e in store.list_weights().values()
        if e.calibrated
        and e.meta.get("corpus") == corpus.fingerprint()
        and e.network.startswith(CAPP_NETWORK)
        and all((e.meta.get("config") or {}).get(k) == v for k, v in want.items())
    ]
    return max(matches, key=lambda e: e.registered) if matches else None


class AudioPoseAlignment(LandmarkClipMetric):
    """CAPP-style audio-pose alignment of `EvalSample.fake` with `EvalSample.audio` (higher is better).

    weights: a registered CAPP weights name or file (`metrics.backbones.capp.capp_blob` layout); None = the CAPP
    calibrated on `corpus` (`metrics.calibration.capp.calibrate_capp`). Head angles: landmarks of the clip (see
    LandmarkClipMetric) through solvePnP.
    """

    outputs = ("capp",)
    higher_is_better = True
    config_section = "capp"  # weights, landmarks, calibrate (the calibrator's budget); the runner passes the corpus

    def __init__(
        self,
        weights: str | None = None,
        net: CappNet | None = None,
        calibrate: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        info: dict[str, Any] = {"network": CAPP_NETWORK, "weights": "given"}
        if net is None:
            net, info = self._load(weights, kwargs.get("corpus"), calibrate)
        self.net: CappNet = net
        self.evaluator_info = {**(self.evaluator_info or {}), "capp": info}

    @classmethod
    def calibration_needed(cls, settings: dict[str, Any], corpus: LayoutCorpus) -> list[str]:
        needed = super().calibration_needed(settings, corpus)
        names = [needed] if isinstance(needed, str) else list(needed or [])
        if settings.get("weights") is None and store_find_capp(corpus, settings.get("calibrate")) is None:
            names.append("capp")
        return names

    @staticmethod
    def _load(
        weights: str | None, corpus: LayoutCorpus | None, calibrate: dict[str, Any] | None = None
    ) -> tuple[CappNet, dict[str, Any]]:
        from metrics import weights as store

        if weights is None:
            entry = store_find_capp(corpus, calibrate)
            if entry is None:
                raise store.WeightsError(
                    "no CAPP model for this corpus: run `bench calibrate --what capp` or set "
                    "`metrics.capp.weights` (a registered name or a file)"
                )
            weights = entry.name
        path = Path(weights) if Path(weights).is_file() else store.resolve(weights)[0]
        blob, _ = load_checkpoint_file(path)
        info = {"network": CAPP_NETWORK, "weights": str(weights), "sha256": store.sha256_file(path)}
        info["content_sha256"] = store.content_digest(blob)
        return capp_from_blob(blob), info

    def score_clip(self, sample: EvalSample) -> tuple[float]:
        if sample.audio is None:
            raise ClipScoreError("CAPP needs the clip's audio")
        lm = self.landmarks_of(sample, "fake")
        try:
            angles = sample.extra.get("head_angles")
            if angles is None or len(angles) != len(lm):
                angles = head_angles(lm, sample.fake.shape[1:3])
        except ValueError as err:
            raise ClipScoreError(str(err)) from err
        return (self.net.score(angles, sample.audio),)
