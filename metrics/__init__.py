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
    "wer": MetricSpec(
        "metrics.wer:LipreaderWER",
        "lower",
        "wer",
        description="lipreader word error rate (word corpora: 1 - top-1 word accuracy; sentences: jiwer WER)",
    ),
    "blinks_per_s": MetricSpec(
        "metrics.blinks:BlinkMetrics",
        "match_gt",
        "blinks_per_s",
        description="blinks per second (DinoMan/blink-detector EAR rule): total blinks / total seconds",
    ),
    "blink_dur": MetricSpec(
        "metrics.blinks:BlinkMetrics",
        "match_gt",
        "blink_dur",
        description="median blink duration (paper: frames, end - start; standard: seconds)",
    ),
    "lmd": MetricSpec(
        "metrics.lmd:LandmarkDistance",
        "lower",
        "lmd",
        description="mouth landmark distance to the real clip, pixels at 128 px wide (Chen et al. 2018)",
    ),
    "cpbd": MetricSpec(
        "metrics.cpbd:CPBD",
        "higher",
        "cpbd",
        description="cumulative probability of blur detection, no-reference sharpness (Narvekar & Karam 2011)",
    ),
    "csim": MetricSpec(
        "metrics.csim:IdentitySimilarity",
        "higher",
        "csim",
        description="identity cosine to the real clip (dlib face-recognition ResNet embeddings)",
    ),
    "delta_p": MetricSpec(
        "metrics.headpose:HeadPoseVariation",
        "match_gt",
        "delta_p",
        description="mean absolute head-angle change between adjacent frames, degrees (landmarks + solvePnP)",
    ),
    "capp": MetricSpec(
        "metrics.pose:AudioPoseAlignment",
        "higher",
        "capp",
        description="CAPP-style audio-pose alignment: cosine of contrastive pose/audio embeddings (VASA-1 sec. 4.2)",
    ),
    "fid_tf1": MetricSpec(
        "metrics.fid:FrechetInceptionDistance",
        "lower",
        "fid_tf1",
        description="FID of generated vs real frames, InceptionV3 pool3, TF1 bilinear resize to 299 (TF FID)",
    ),
    "fid_aa": MetricSpec(
        "metrics.fid:FrechetInceptionDistanceAntialias",
        "lower",
        "fid_aa",
        description="FID of generated vs real frames, InceptionV3 pool3, antialiased resize (torchmetrics default)",
    ),
    "fvd_16f": MetricSpec(
        "metrics.fvd:FrechetVideoDistance",
        "lower",
        "fvd_16f",
        description="FVD: I3D Kinetics-400 logits of 16-frame windows at 224x224, generated vs real clips",
    ),
    "psnr": MetricSpec(
        "metrics.fidelity:FidelityScores",
        "higher",
        "psnr",
        description="PSNR (dB) of generated vs ground-truth frames, mean over frames then clips",
    ),
    "ssim": MetricSpec(
        "metrics.fidelity:FidelityScores",
        "higher",
        "ssim",
        description="SSIM (Gaussian 11x11, sigma 1.5) of generated vs ground-truth frames, mean over frames/clips",
    ),
}

DIRECTIONS = ("lower", "higher", "match_gt")
