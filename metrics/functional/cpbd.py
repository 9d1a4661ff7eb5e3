"""CPBD: cumulative probability of blur detection (Narvekar & Karam, IEEE TIP 2011), a no-reference sharpness.

Our implementation of the algorithm as the PyPI `cpbd` port (1.0.x, the package SDA-era talking-face papers
used; it no longer imports on current SciPy, docs/metrics_reference.md) computes it, so the numbers
are comparable with theirs: skimage.data.astronaut() in cv2 grey scores 0.383 here as with `cpbd-py312`.

1. Edge blocks: the image is cut into 64x64 blocks (partial blocks at the right/bottom are ignored); a block is
   an edge block when more than 0.2 % (THRESHOLD 0.002) of its pixels are Canny edges (skimage `canny` with its
   defaults on the 0-255 float image, as the port calls it).
2. Edge widths (Marziliano et al. 2002) at the edge pixels of a thinned horizontal Sobel edge map (vertical
   edges): squared response of the normalised Sobel kernel, zeroed where <= 2 sqrt(mean(response^2)) (the
   port's reading of Octave's `edge.m` threshold, kept for parity), kept where it is a strict local maximum
   across rows or columns. For a gradient angle quantised to 0 deg the width is the number of pixels to the
   left while intensity keeps falling plus those to the right while it keeps rising (+1 each side; at most 101);
   mirrored for 180 deg; other angles get no width (and, as in the port, no edge gets a width when every
   gradient angle of the image is 0).
3. Per edge block, the just-noticeable width is 5 when the block contrast (max - min) is <= 50, else 3; each
   edge's probability of blur detection is P = 1 - exp(-(w / w_JNB)^3.6) (BETA 3.6).
4. CPBD = the fraction of all edges (over all edge blocks) with P <= 0.63 (probability histogram in 1 % bins,
   bins 0..63 summed), i.e. edges whose blur is not noticeable. Higher is sharper; 0 when there is no edge.
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.002
BETA = 3.6
BLOCK = 64
MAX_MARGIN = 100
#: just-noticeable blur width by block contrast (0..255): 5 for contrast <= 50, else 3
WIDTH_JNB = np.concatenate([5 * np.ones(51), 3 * np.ones(205)])


def _grey(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 3:
        import cv2

        img = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    if img.ndim != 2:
        raise ValueError(f"CPBD needs a grey [H, W] or RGB [H, W, 3] image, got shape {img.shape}")
    return img.astype(np.float64)


def canny_edges(image: np.ndarray) -> np.ndarray:
    from skimage.feature import canny

    # skimage's canny is unannotated
    edges: np.ndarray = canny(image)  # type: ignore[no-untyped-call]
    return edges


def sobel_edges(image: np.ndarray) -> np.ndarray:
    """Thinned vertical-edge map from the horizontal Sobel response (see the module docstring)."""
    from scipy.ndimage import convolve

    kernel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0
    strength = convolve(image, kernel) ** 2
    cutoff = 2.0 * np.sqrt(np.mean(strength))
    strength[strength <= cutoff] = 0.0
    zc, zr = np.zeros((strength.shape[0], 1)), np.zeros((1, strength.shape[1]))
    across_cols = (strength > np.hstack([zc, strength[:, :-1]])) & (strength > np.hstack([strength[:, 1:], zc]))
    across_rows = (strength > np.vstack([zr, strength[:-1]])) & (strength > np.vstack([strength[1:], zr]))
    thinned: np.ndarray = across_cols | across_rows
    return thinned


def _runs(positive: np.ndarray, leftward: bool) -> np.ndarray:
    """For a boolean [H, N] array, the length of the run of True ending at (leftward) / starting at each column."""
    n = positive.shape[1]
    out = np.zeros(positive.shape, np.int64)
    cols = range(n) if leftward else range(n - 1, -1, -1)
    prev = np.zeros(positive.shape[0], np.int64)
    for c in cols:
        prev = np.where(positive[:, c], prev + 1, 0)
        out[:, c] = prev
    return out


def marziliano_widths(edges: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Edge width [H, W] at edge pixels with a horizontal gradient direction (0 elsewhere)."""
    h, w = image.shape
    gy, gx = np.gradient(image)
    angle = np.degrees(np.arctan2(gy, gx))
    angle[gx == 0] = np.where(gy[gx == 0] == 0, 0.0, 90.0)
    quant = 45.0 * np.round(angle / 45.0)
    widths = np.zeros((h, w))
    if not np.any(angle):
        return widths
    d = np.diff(image, axis=1)  # d[:, j] = I[:, j + 1] - I[:, j], shape [H, W - 1]
    rise_left, fall_left = _runs(d > 0, True), _runs(d < 0, True)
    rise_right, fall_right = _runs(d > 0, False), _runs(d < 0, False)
    inner = np.zeros((h, w), bool)
    inner[1:-1, 1:-1] = True
    for q, left_runs, right_runs in ((0.0, rise_left, rise_right), (180.0, fall_left, fall_right)):
        rows, cols = np.nonzero(edges & inner & (np.abs(quant) == q))
        if len(rows) == 0:
            continue
        # left of an edge at c: steps c-1 -> c-2, c-2 -> c-3, ... keep going while d[c-2], d[c-3], ... keep the
        # edge's sign; right: d[c+1], d[c+2], ... (the reference loops, vectorised as run lengths)
        left = np.where(cols >= 2, left_runs[rows, np.maximum(cols - 2, 0)], 0)
        right = np.where(cols + 1 <= w - 2, right_runs[rows, np.minimum(cols + 1, w - 2)], 0)
        widths[rows, cols] = np.minimum(left, MAX_MARGIN) + 1 + np.minimum(right, MAX_MARGIN) + 1
    return widths


def cpbd(image: np.ndarray) -> float:
    """CPBD sharpness in [0, 1] of a grey uint8 [H, W] (or RGB [H, W, 3]) image; higher is sharper."""
    img = _grey(image)
    canny = canny_edges(img)
    widths = marziliano_widths(sobel_edges(img), img)
    hist = np.zeros(101)
    total = 0
    for i in range(img.shape[0] // BLOCK):
        for j in range(img.shape[1] // BLOCK):
            rows, cols = slice(BLOCK * i, BLOCK * (i + 1)), slice(BLOCK * j, BLOCK * (j + 1))
            if np.count_nonzero(canny[rows, cols]) <= BLOCK * BLOCK * THRESHOLD:
                continue
            w = widths[rows, cols]
            w = w[w != 0]
            block = img[rows, cols]
            jnb = WIDTH_JNB[int(block.max() - block.min())]
            prob = 1.0 - np.exp(-(np.abs(w / jnb) ** BETA))
            np.add.at(hist, np.round(prob * 100).astype(np.int64), 1)
            total += len(w)
    if total == 0:
        return 0.0
    return float(hist[:64].sum() / total)


def video_cpbd(video: np.ndarray, stride: int = 1) -> float:
    """Mean CPBD of the frames (every `stride`-th) of a uint8 video [T, H, W, 3]."""
    frames = np.asarray(video)[::stride]
    if len(frames) == 0:
        raise ValueError("CPBD of an empty video")
    return float(np.mean([cpbd(f) for f in frames]))
