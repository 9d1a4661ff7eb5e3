"""CPBD: Marziliano widths on known edges, sharp > blurred > flat, the metric's input checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from metrics.base import EvalSample
from metrics.cpbd import CPBD
from metrics.functional.cpbd import cpbd, marziliano_widths, video_cpbd


def _texture():
    """A 128x128 grey crop around the astronaut's face (a natural image with sharp edges)."""
    skdata = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skdata.astronaut()[40:168, 150:278], cv2.COLOR_RGB2GRAY)


def test_marziliano_width_of_a_ramp():
    # a left-to-right ramp over 4 pixels (values 0, 0, 50, 100, 150, 200, 200): the width at its centre counts the
    # rising pixels on each side plus one each, as the reference loops do
    row = np.array([0, 0, 0, 50, 100, 150, 200, 200, 200], np.float64)
    img = np.tile(row, (5, 1))
    img[0, 0] = 1.0  # the reference measures nothing when every gradient angle is 0 (`if np.any(edge_angles)`)
    edges = np.zeros(img.shape, bool)
    edges[2, 4] = True
    w = marziliano_widths(edges, img)
    # left of col 4: d[2] = 50 > 0 (one step), d[1] = 0 stops -> 1 + 1; right: d[5] = 50 > 0, d[6] = 0 -> 1 + 1
    assert w[2, 4] == 4.0
    falling = np.tile(row[::-1], (5, 1))
    falling[0, 0] = 1.0
    w2 = marziliano_widths(edges[:, ::-1].copy(), falling)
    assert w2[2, 4] == 4.0
    assert np.count_nonzero(w) == 1


def test_parity_with_the_pypi_port_on_astronaut():
    skdata = pytest.importorskip("skimage.data")
    grey = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)
    # cpbd-py312's cpbd.compute(grey uint8) gives 0.383 on this image (docs/metrics_reference.md, CPBD)
    assert cpbd(grey) == pytest.approx(0.383, abs=5e-4)
    assert cpbd(cv2.GaussianBlur(grey, (9, 9), 0)) < 0.05


def test_sharp_beats_blurred_and_flat_is_zero():
    img = _texture()
    sharp = cpbd(img)
    blurred = cpbd(cv2.GaussianBlur(img, (9, 9), 3))
    assert 0.0 <= blurred < sharp <= 1.0
    assert blurred < 0.5 * sharp
    assert cpbd(np.full((128, 128), 90, np.uint8)) == 0.0
    rgb = np.repeat(img[..., None], 3, axis=-1)
    assert cpbd(rgb) == pytest.approx(sharp)


def test_metric_over_clips():
    sharp = np.repeat(np.repeat(_texture()[None, ..., None], 3, -1), 3, 0)
    blurred = np.stack([cv2.GaussianBlur(f, (9, 9), 3) for f in sharp])
    m = CPBD()
    m.update([EvalSample(0, "sharp", sharp), EvalSample(1, "small", sharp[:, :32, :32])])
    assert m.compute()["cpbd"].item() == pytest.approx(video_cpbd(sharp))
    assert m.n_failed.item() == 1 and "64x64" in m.failures[0][1]
    b = CPBD(stride=2)
    b.update([EvalSample(0, "blurred", blurred)])
    assert b.compute()["cpbd"].item() < m.compute()["cpbd"].item()
