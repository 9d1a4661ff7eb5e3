"""Talking-face metrics. METRICS maps each reported value to its lazy metric class and its direction.

direction: "lower" / "higher" is better, or "match_gt" (closer to the ground-truth row is better).
Several values may come from one class (one SyncNet pass gives AV offset, AV confidence, LSE-D and LSE-C).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MetricSpec:
    target: str  # "module:Class", imported only when used
    direction: str  # lower | higher | match_gt
    output: str  # which of the class's outputs this value is
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


METRICS: dict[str, MetricSpec] = {
    "ofm": MetricSpec(
        "metrics.flow:OpticalFlowMagnitude",
        "match_gt",
        "ofm",
        description="mean optical-flow magnitude (Diffused Heads App. A)",
    ),
    "fmse": MetricSpec(
        "metrics.flow:FrameMSE",
        "match_gt",
        "fmse",
        description="mean squared difference of consecutive frames (Diffused Heads App. A)",
    ),
    "av_offset": MetricSpec(
        "metrics.sync:SyncNetScores",
        "match_gt",
        "av_offset",
        description="SyncNet audio-video offset in frames (syncnet_python)",
    ),
    "av_conf": MetricSpec(
        "metrics.sync:SyncNetScores",
        "higher",
        "av_conf",
        description="SyncNet confidence: median - min of the mean distance over shifts",
    ),
    "lse_d": MetricSpec(
        "metrics.sync:SyncNetScores",
        "lower",
        "lse_d",
        description="Wav2Lip LSE-D: min over shifts of the mean SyncNet distance",
    ),
    "lse_c": MetricSpec(
        "metrics.sync:SyncNetScores",
        "higher",
        "lse_c",
        description="Wav2Lip LSE-C: SyncNet confidence, averaged over clips",
    ),
}

DIRECTIONS = ("lower", "higher", "match_gt")
