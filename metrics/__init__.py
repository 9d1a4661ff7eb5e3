"""Talking-face metrics. METRICS maps each reported value to its lazy metric class and describes it: direction,
column label, decimals and position in the tables, the evaluator network behind it, its config section.

direction: "lower" / "higher" is better, or "match_gt" (closer to the ground-truth row is better).
Several values may come from one class (one SyncNet pass gives AV offset, AV confidence, LSE-D and LSE-C).

This registry is the only description of a metric: the tables (``benchmark.tables``) take every label, decimal
count, column position and default direction from it, so adding a metric adds its column.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

DIRECTIONS = ("lower", "higher", "match_gt")


@dataclass(frozen=True)
class MetricSpec:
    target: str  # "module:Class", imported only when used
    direction: str  # lower | higher | match_gt
    output: str  # which of the class's outputs this value is
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    #: the name the tables group a metric's variants under: ``fvd_16f`` and ``fvd2048_16f`` are both ``fvd``;
    #: "" = the registry key itself
    family: str = ""
    #: column header of the family; a variant adds its suffix (``fvd_16f`` -> "FVD_16f"); "" = the family name
    label: str = ""
    #: decimals the tables print; None = 3, or 2 from 100 up (the rule for names without a description)
    decimals: int | None = None
    #: column position in the tables; None = with the last position. Columns of one position sort by name
    order: int | None = None
    #: whole numbers print as signed integers (+1, -2, 0), others with ``decimals`` and a sign
    signed: bool = False
    #: the results ``evaluators`` key of the network the value comes from (its class's ``evaluator_key``)
    evaluator: str | None = None
    #: the ``metrics.<section>`` of configs/metrics/default.yaml its class reads (its class's ``config_section``)
    config_section: str | None = None
    #: column headers of published tables (reports/reference/*.csv) that hold this metric's family
    published_names: tuple[str, ...] = ()
    #: another key whose value this one equals by definition (LSE-C is the clip mean of the AV confidence): where
    #: both hold the same numbers in every row, the tables show one column under both labels
    same_as: str | None = None
    #: a distance between two sets (FID, FVD): below this many clips per set the tables warn (SMALL_SET_CLIPS)
    min_clips: int | None = None


# Fréchet distances are biased upward on small sets, roughly in proportion to 1/N (Chong & Forsyth, "Effectively
# Unbiased FID and Inception Score and where to find them", CVPR 2020), so two rows are comparable only on the same
# clips, and a small set's value says little on its own; StyleGAN-V scores FVD on 2048 videos. The tables warn
# below 256 clips, our choice: an eighth of that, so Diffused Heads' CREMA-D test list (820 clips) and LRW's test
# split pass and a smoke run (--limit) is flagged. Their intervals resample the clip set (docs/intervals.md).
SMALL_SET_CLIPS = 256

# column positions: Table 1 of Diffused Heads (Stypulkowski et al., WACV 2023; it prints 2 decimals throughout),
# then the Wav2Lip sync scores and the lipreader; every other metric shares the next position, sorted by name
_OTHER = 11

METRICS: dict[str, MetricSpec] = {
    "ofm": MetricSpec(
        "metrics.flow:OpticalFlowMagnitude",
        "match_gt",
        "ofm",
        description="mean optical-flow magnitude (Diffused Heads App. A)",
        label="OFM",
        decimals=2,
        order=4,
        config_section="flow",
        published_names=("OFM",),
    ),
    "fmse": MetricSpec(
        "metrics.flow:FrameMSE",
        "match_gt",
        "fmse",
        description="mean squared difference of consecutive frames (Diffused Heads App. A)",
        label="F-MSE",
        decimals=2,
        order=5,
        config_section="flow",
        published_names=("F_MSE",),
    ),
    "av_offset": MetricSpec(
        "metrics.sync:SyncNetScores",
        "match_gt",
        "av_offset",
        description="SyncNet audio-video offset in frames (syncnet_python)",
        label="AV offset",
        # whole frames per clip; a mean over clips keeps one decimal
        decimals=1,
        signed=True,
        order=6,
        evaluator="syncnet",
        config_section="sync",
        published_names=("AV_offset",),
    ),
    "av_conf": MetricSpec(
        "metrics.sync:SyncNetScores",
        "higher",
        "av_conf",
        description="SyncNet confidence: median - min of the mean distance over shifts",
        label="AV conf.",
        decimals=2,
        order=7,
        evaluator="syncnet",
        config_section="sync",
        published_names=("AV_conf",),
    ),
    # beside AV offset / confidence: the same question answered without SyncNet (landmarks and loudness)
    "lsync_lm_offset": MetricSpec(
        "metrics.lipsync_lm:LandmarkLipSync",
        "match_gt",
        "lsync_lm_offset",
        description="landmark lip-sync offset in frames: best lag of mouth opening vs loudness (AV offset's sign)",
        label="LM-sync offset",
        decimals=1,
        signed=True,
        order=7,
        evaluator="landmarks",
        config_section="lipsync_lm",
    ),
    "lsync_lm_corr": MetricSpec(
        "metrics.lipsync_lm:LandmarkLipSync",
        "higher",
        "lsync_lm_corr",
        description="landmark lip-sync: correlation of mouth opening and loudness over voiced frames, at lag 0",
        label="LM-sync corr.",
        decimals=2,
        order=7,
        evaluator="landmarks",
        config_section="lipsync_lm",
    ),
    "lse_d": MetricSpec(
        "metrics.sync:SyncNetScores",
        "lower",
        "lse_d",
        description="Wav2Lip LSE-D: min over shifts of the mean SyncNet distance",
        label="LSE-D",
        decimals=3,  # Wav2Lip prints LSE-D/C with 3
        order=8,
        evaluator="syncnet",
        config_section="sync",
    ),
    "lse_c": MetricSpec(
        "metrics.sync:SyncNetScores",
        "higher",
        "lse_c",
        description="Wav2Lip LSE-C: SyncNet confidence, averaged over clips",
        label="LSE-C",
        decimals=3,
        order=9,
        evaluator="syncnet",
        config_section="sync",
        same_as="av_conf",
    ),
    "wer": MetricSpec(
        "metrics.wer:LipreaderWER",
        "lower",
        "wer",
        description="lipreader word error rate (word corpora: 1 - top-1 word accuracy; sentences: jiwer WER)",
        label="WER",
        decimals=2,
        order=10,
        evaluator="lipreader",
        config_section="lipreader",
        published_names=("WER",),
    ),
    "blinks_per_s": MetricSpec(
        "metrics.blinks:BlinkMetrics",
        "match_gt",
        "blinks_per_s",
        description="blinks per second (DinoMan/blink-detector EAR rule): total blinks / total seconds",
        label="Blinks/s",
        decimals=2,
        order=2,
        evaluator="landmarks",
        config_section="blinks",
        published_names=("blinks_per_s",),
    ),
    "blink_dur": MetricSpec(
        "metrics.blinks:BlinkMetrics",
        "match_gt",
        "blink_dur",
        description="median blink duration (paper: frames, end - start; standard: seconds)",
        label="Blink dur.",
        decimals=2,
        order=3,
        evaluator="landmarks",
        config_section="blinks",
        published_names=("blink_dur_s",),
    ),
    "lmd": MetricSpec(
        "metrics.lmd:LandmarkDistance",
        "lower",
        "lmd",
        description="mouth landmark distance to the real clip, pixels at 128 px wide (Chen et al. 2018)",
        label="LMD",
        decimals=3,
        order=_OTHER,
        evaluator="landmarks",
        config_section="lmd",
    ),
    "cpbd": MetricSpec(
        "metrics.cpbd:CPBD",
        "higher",
        "cpbd",
        description="cumulative probability of blur detection, no-reference sharpness (Narvekar & Karam 2011)",
        label="CPBD",
        decimals=3,
        order=_OTHER,
        config_section="cpbd",
    ),
    "csim": MetricSpec(
        "metrics.csim:IdentitySimilarity",
        "higher",
        "csim",
        description="identity cosine to the real clip (dlib face-recognition ResNet embeddings)",
        label="CSIM",
        decimals=3,
        order=_OTHER,
        evaluator="landmarks",
        config_section="csim",
    ),
    "delta_p": MetricSpec(
        "metrics.headpose:HeadPoseVariation",
        "match_gt",
        "delta_p",
        description="mean absolute head-angle change between adjacent frames, degrees (landmarks + solvePnP)",
        label="delta_p",
        decimals=3,
        order=_OTHER,
        evaluator="landmarks",
        config_section="headpose",
    ),
    "capp": MetricSpec(
        "metrics.pose:AudioPoseAlignment",
        "higher",
        "capp",
        description="CAPP-style audio-pose alignment: cosine of contrastive pose/audio embeddings (VASA-1 sec. 4.2)",
        label="capp",
        decimals=3,
        order=_OTHER,
        evaluator="landmarks",
        config_section="capp",
    ),
    "fid_tf1": MetricSpec(
        "metrics.fid:FrechetInceptionDistance",
        "lower",
        "fid_tf1",
        description="FID of generated vs real frames, InceptionV3 pool3, TF1 bilinear resize to 299 (TF FID)",
        family="fid",
        label="FID",
        decimals=2,
        order=1,
        evaluator="inception",
        config_section="fid",
        min_clips=SMALL_SET_CLIPS,
        published_names=("FID",),
    ),
    "fid_aa": MetricSpec(
        "metrics.fid:FrechetInceptionDistanceAntialias",
        "lower",
        "fid_aa",
        description="FID of generated vs real frames, InceptionV3 pool3, antialiased resize (torchmetrics default)",
        family="fid",
        label="FID",
        decimals=2,
        order=1,
        evaluator="inception",
        config_section="fid",
        min_clips=SMALL_SET_CLIPS,
    ),
    "fvd_16f": MetricSpec(
        "metrics.fvd:FrechetVideoDistance",
        "lower",
        "fvd_16f",
        description="FVD: I3D Kinetics-400 logits of 16-frame windows at 224x224, generated vs real clips",
        family="fvd",
        label="FVD",
        decimals=2,
        order=0,
        evaluator="i3d",
        config_section="fvd",
        min_clips=SMALL_SET_CLIPS,
        published_names=("FVD",),
    ),
    "psnr": MetricSpec(
        "metrics.fidelity:FidelityScores",
        "higher",
        "psnr",
        description="PSNR (dB) of generated vs ground-truth frames, mean over frames then clips",
        label="PSNR",
        decimals=2,
        order=_OTHER,
        config_section="fidelity",
    ),
    "ssim": MetricSpec(
        "metrics.fidelity:FidelityScores",
        "higher",
        "ssim",
        description="SSIM (Gaussian 11x11, sigma 1.5) of generated vs ground-truth frames, mean over frames/clips",
        label="SSIM",
        decimals=3,
        order=_OTHER,
        config_section="fidelity",
    ),
}


def _paper_variant(of: str, name: str, target: str, description: str) -> MetricSpec:
    """A set metric computed as a paper's code does: the columns of `of`'s family, its own class and value."""
    return replace(METRICS[of], target=target, output=name, description=description, published_names=())


# the name says whose protocol each follows; docs/metrics_reference.md says where and by how much they differ
METRICS.update(
    {
        "fid_pytorchfid": _paper_variant(
            "fid_tf1",
            "fid_pytorchfid",
            "metrics.fid:FrechetInceptionDistancePytorchFID",
            "FID of generated vs real frames as pytorch-fid: [0, 1] frames, PyTorch bilinear to 299, 2x - 1",
        ),
        "fvd2048_16f": _paper_variant(
            "fvd_16f",
            "fvd2048_16f",
            "metrics.fvd:FrechetVideoDistanceStyleGANV",
            "FVD as StyleGAN-V: real windows at seeded random offsets, <= 2048 clips, biased covariance",
        ),
        "fvd_videogpt": _paper_variant(
            "fvd_16f",
            "fvd_videogpt",
            "metrics.fvd:FrechetVideoDistanceVideoGPT",
            "FVD as VideoGPT/TATS fvd.py: i3d_pretrained_400, first 16 frames at 224x224, n - 1 covariance",
        ),
    }
)


def families() -> dict[str, MetricSpec]:
    """Family name -> its description (its first registered member): what the tables show for its columns."""
    out: dict[str, MetricSpec] = {}
    for key, spec in METRICS.items():
        out.setdefault(spec.family or key, spec)
    return out


def metric_family(name: str) -> str | None:
    """The family a reported name belongs to: ``fvd_16f`` and ``fvd2048_16f`` -> ``fvd``, ``ofm@paper`` ->
    ``ofm``, ``lmd_mouth`` -> ``lmd``; None for a name outside the registry."""
    low = name.lower()
    for family in sorted(families(), key=len, reverse=True):
        # a protocol suffix follows a non-letter (StyleGAN-V style "fvd2048_16f"); "fidelity" is not "fid"
        if low == family or (low.startswith(family) and not low[len(family)].isalpha()):
            return family
    return None


def describe(name: str) -> MetricSpec | None:
    """The description behind a reported name: its own entry, else its family's (a variant), else None."""
    if name in METRICS:
        return METRICS[name]
    family = metric_family(name)
    return families()[family] if family is not None else None
