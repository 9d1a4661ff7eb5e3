"""Delta P: frame-to-frame head-pose variation of the generated clip, from landmarks (match_gt).

A generated head should move as much as real heads do: a frozen head scores 0, a jittery one more than the
ground truth. Functional core: `metrics.functional.headpose` (solvePnP of six landmarks on a generic 3D face).
"""

from __future__ import annotations

from metrics.base import ClipScoreError, EvalSample
from metrics.functional.headpose import head_angles, pose_variation
from metrics.landmarks import LandmarkClipMetric


class HeadPoseVariation(LandmarkClipMetric):
    """Delta P of `EvalSample.fake` (uint8 RGB [T, H, W, 3], T >= 2): mean over adjacent frames of the mean
    absolute change of (pitch, yaw, roll) in degrees. The per-frame angles are kept in
    `sample.extra["head_angles"]`."""

    outputs = ("delta_p",)
    higher_is_better = None
    config_section = "headpose"

    def score_clip(self, sample: EvalSample) -> tuple[float]:
        lm = self.landmarks_of(sample, "fake")
        if lm.shape[0] < 2:
            raise ClipScoreError(f"Delta P needs at least 2 frames, clip has {lm.shape[0]}")
        try:
            angles = head_angles(lm, sample.fake.shape[1:3])
        except ValueError as err:
            raise ClipScoreError(str(err)) from err
        sample.extra["head_angles"] = angles
        return (pose_variation(angles),)
