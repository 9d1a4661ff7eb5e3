"""The drawn face: iBUG-68 landmarks computed from per-frame parameters, then an image rendered from them.

Per-frame render parameters (all arrays have T rows, so any frame re-indexing -- freeze, drop, duplicate --
is applied to every one of them alike and the clip stays re-renderable):

    pose      float32 [T, 4]  tx, ty (canonical pixels), roll (degrees, positive = clockwise on screen), scale
    mouth     float32 [T, 2]  opening 0 (closed) .. 1 (widest), width factor (1 = rest width)
    eyelid    float32 [T]     closure 0 (open) .. 1 (closed), both eyes
    light     float32 [T, 2]  global gain, left-right gradient amplitude (0 = flat lighting)
    occluder  float32 [T, 8]  cx, cy, rx, ry (frame pixels), angle (deg), r, g, b; rx <= 0 = no occluder
    noise     int16   [T, 3]  pixel-noise tile index and its (dy, dx) offset
    jitter    int16   [T, 2]  integer (dx, dy) translation of the finished frame (edges replicated)
    source_frame int32 [T]    which frame of the originally rendered clip this frame shows

Canonical pixels are pixels of a 128x128 frame; the face's eye line sits at 42 % of the frame height.
Landmarks are in frame pixel coordinates with pixel centres on integers (cv2's and dlib's convention).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from data.synthetic.speakers import Speaker

CANONICAL_SIZE = 128.0
EYE_LINE = 0.42  # eye line height as a fraction of the frame
ROLL_PIVOT = (0.0, 20.0)  # canonical point the head rolls about (mid-face, roughly the nose tip)
JAW_Y0 = 3.0  # jaw points 0 and 16 sit this far below the eye line
MAX_GAP = 0.5  # widest inner-lip gap as a fraction of the speaker's mouth width
CLOSED_EAR = 0.03  # eye aspect ratio of a fully closed eye
SHIFT = 4  # cv2 fixed-point bits: coordinates are drawn at 1/16 pixel
_SCALE = float(1 << SHIFT)
PARAM_KEYS = ("pose", "mouth", "eyelid", "light", "occluder", "noise", "jitter", "source_frame")

# iBUG-68 index ranges
JAW = slice(0, 17)
RIGHT_BROW = slice(17, 22)
LEFT_BROW = slice(22, 27)
NOSE_BRIDGE = slice(27, 31)
NOSE_BASE = slice(31, 36)
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
OUTER_LIP = slice(48, 60)
INNER_LIP = slice(60, 68)


def eye_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """EAR per frame and eye, float [..., 2] (right, left): (|p1-p5| + |p2-p4|) / (2 |p0-p3|)."""
    lm = np.asarray(landmarks, np.float64)
    out = []
    for start in (36, 42):
        p = [lm[..., start + j, :] for j in range(6)]
        v1 = np.linalg.norm(p[1] - p[5], axis=-1)
        v2 = np.linalg.norm(p[2] - p[4], axis=-1)
        out.append((v1 + v2) / (2.0 * np.linalg.norm(p[0] - p[3], axis=-1)))
    return np.stack(out, axis=-1)


def _mouth_points(sp: Speaker, open_: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Canonical lip landmarks 48-67 [T, 20, 2]; the lower lip (and jaw) move more than the upper lip."""
    t = open_.shape[0]
    half = sp.mouth_width * width[:, None] / 2.0  # [T,1]
    g = (MAX_GAP * sp.mouth_width) * open_[:, None]
    my = sp.mouth_y + 0.15 * g - np.maximum(width[:, None] - 1.0, 0.0) * 6.0  # spread lips lift a little

    def gap_at(f: np.ndarray) -> np.ndarray:  # opening across the mouth, largest mid-mouth, 0 at the corners
        return g * (1.0 - np.asarray(f) ** 2)

    fu = np.array([-0.62, -0.25, 0.0, 0.25, 0.62])  # 49-53, left to right
    fl = fu[::-1]  # 55-59, right to left
    fi_u = np.array([-0.35, 0.0, 0.35])  # 61-63
    fi_l = fi_u[::-1]  # 65-67
    ku = np.array([0.85, 1.1, 0.9, 1.1, 0.85])  # cupid's bow: the centre dips
    kl = np.array([0.8, 1.0, 1.05, 1.0, 0.8])
    corner = np.array([1.0])
    inner_corner = np.array([0.84])
    parts = [
        (-corner, my),  # 48
        (fu, my - 0.3 * gap_at(fu) - sp.upper_lip * ku),  # 49-53
        (corner, my),  # 54
        (fl, my + 0.7 * gap_at(fl) + sp.lower_lip * kl),  # 55-59
        (-inner_corner, my + 0.2 * gap_at(inner_corner)),  # 60
        (fi_u, my - 0.3 * gap_at(fi_u)),  # 61-63
        (inner_corner, my + 0.2 * gap_at(inner_corner)),  # 64
        (fi_l, my + 0.7 * gap_at(fi_l)),  # 65-67
    ]
    x = np.concatenate([np.broadcast_to(f * half, (t, f.size)) for f, _ in parts], axis=1)
    y = np.concatenate([np.broadcast_to(v, (t, f.size)) for f, v in parts], axis=1)
    return np.stack([x, y], axis=-1)


def canonical_landmarks(sp: Speaker, mouth: np.ndarray, eyelid: np.ndarray) -> np.ndarray:
    """Landmarks [T, 68, 2] in canonical pixels (origin on the midline at eye level, no pose)."""
    t = mouth.shape[0]
    open_, width = mouth[:, 0].astype(np.float64), mouth[:, 1].astype(np.float64)
    c = np.clip(eyelid.astype(np.float64), 0.0, 1.0)
    lm = np.zeros((t, 68, 2))

    # jaw: lower half of a superellipse; the chin drops with the lower lip
    phi = np.pi * np.arange(17) / 16.0
    cos, sin = np.cos(phi), np.sin(phi)
    e = 2.0 / sp.jaw_power
    lm[:, JAW, 0] = -sp.face_half_width * np.sign(cos) * np.abs(cos) ** e
    drop = 0.7 * MAX_GAP * sp.mouth_width * open_
    lm[:, JAW, 1] = JAW_Y0 + (sp.face_height - JAW_Y0) * np.abs(sin) ** e + 0.9 * drop[:, None] * sin**2

    # brows: five points each, outer to inner on the right (17-21), inner to outer on the left (22-26)
    s = np.linspace(0.0, 1.0, 5)
    bx = -sp.eye_spacing - 0.8 * sp.eye_width + s * 1.35 * sp.eye_width
    by = -sp.brow_height - 2.0 * np.sin(np.pi * (0.1 + 0.75 * s)) + 1.0 * c[:, None]
    lm[:, RIGHT_BROW, 0] = bx
    lm[:, RIGHT_BROW, 1] = by
    lm[:, LEFT_BROW, 0] = -bx[::-1]
    lm[:, LEFT_BROW, 1] = by[:, ::-1]

    # nose: bridge 27-30 from between the eyes to the tip, base 31-35 left to right
    lm[:, NOSE_BRIDGE, 1] = np.linspace(-1.0, sp.nose_length, 4)
    lm[:, NOSE_BASE, 0] = sp.nose_width / 2.0 * np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    lm[:, NOSE_BASE, 1] = sp.nose_length + np.array([1.5, 2.5, 3.0, 2.5, 1.5])

    # eyes: EAR = (|p1-p5| + |p2-p4|) / (2 |p0-p3|) = gap / width, since the lid pairs are vertical
    w = sp.eye_width
    gap = (1.0 - c) * sp.eye_open_ear * w + c * CLOSED_EAR * w
    low = 0.4 * sp.eye_open_ear * w * (1.0 - 0.3 * c)
    up = low - gap
    for sl, cx, sign in ((RIGHT_EYE, -sp.eye_spacing, 1.0), (LEFT_EYE, sp.eye_spacing, -1.0)):
        # right eye starts at its outer corner (36), left eye at its inner corner (42): both run left to right
        xs = cx + w * np.array([-0.5, -1 / 6, 1 / 6, 0.5, 1 / 6, -1 / 6])
        lm[:, sl, 0] = xs
        ys = np.stack([np.zeros(t), up, up, np.zeros(t), low, low], axis=1)
        # outer corners sit half a pixel higher (a slight upward tilt)
        outer = 0 if sign > 0 else 3
        ys[:, outer] -= 0.5
        lm[:, sl, 1] = ys

    lm[:, 48:68] = _mouth_points(sp, open_, width)
    return lm


def pose_transform(pose: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame 2x2 matrices A [T,2,2] and offsets b [T,2] with pixel = A @ canonical + b."""
    k = size / CANONICAL_SIZE
    tx, ty, roll, scale = (pose[:, i].astype(np.float64) for i in range(4))
    th = np.deg2rad(roll)
    cos, sin = np.cos(th), np.sin(th)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # y down: +roll turns clockwise
    a = (k * scale)[:, None, None] * rot
    pivot = np.array(ROLL_PIVOT)
    origin = np.array([size / 2.0, EYE_LINE * size])
    b = origin + k * (np.stack([tx, ty], -1) + pivot) - a @ pivot
    return a, b


def face_landmarks(sp: Speaker, params: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Landmarks [T, 68, 2] float32 in frame pixels for the given render parameters (jitter included)."""
    canon = canonical_landmarks(sp, params["mouth"], params["eyelid"])
    a, b = pose_transform(params["pose"], size)
    lm = np.einsum("tij,tnj->tni", a, canon) + b[:, None, :]
    lm += params["jitter"][:, None, :].astype(np.float64)
    return lm.astype(np.float32)


# ---------------------------------------------------------------------------------------------- drawing
# Geometry for every frame is computed up front with array operations; the per-frame loop only issues cv2
# drawing calls on precomputed fixed-point polygons (keeps a 2 s clip well under 50 ms).

NOISE_TILES = 8
NOISE_PAD = 16
_ARC = np.linspace(0.0, np.pi, 25)
# hair style -> (hairline depth as a fraction of the head top, outer growth, hairline height at the temples)
_HAIR_CAP = {
    "short": (0.62, 1.10, -0.25),
    "long": (0.60, 1.12, 0.10),
    "fringe": (0.42, 1.10, -0.15),
    "buzz": (0.78, 1.03, -0.40),
}
_SCLERA = (238, 236, 228)
_PUPIL = (15, 12, 12)
_CAVITY = (70, 22, 28)
_TEETH = (236, 232, 220)
_TONGUE = (168, 72, 82)


@lru_cache(maxsize=32)
def _chaikin_matrix(n: int, closed: bool, iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting as a linear map [m, n]: smooth curves through few landmarks, no overshoot."""
    m = np.eye(n)
    for _ in range(iterations):
        k = m.shape[0]
        a = m if closed else m[:-1]
        b = np.roll(m, -1, axis=0) if closed else m[1:]
        cut = np.empty((2 * a.shape[0], n))
        cut[0::2] = 0.75 * a + 0.25 * b
        cut[1::2] = 0.25 * a + 0.75 * b
        m = cut if closed else np.concatenate([m[:1], cut, m[k - 1 :]])
    return m


def _smooth(p: np.ndarray, closed: bool) -> np.ndarray:
    return np.einsum("mn,tnd->tmd", _chaikin_matrix(p.shape[1], closed), p)


def _fix(p: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.round(np.asarray(p) * _SCALE), dtype=np.int32)


def _shade(color: tuple[int, ...], f: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c * f))) for c in color)  # type: ignore[return-value]


def _box(outline: np.ndarray, size: int) -> np.ndarray:
    """Per-frame integer ROI [T, 4] (x0, y0, x1, y1) around float outlines [T, n, 2], clipped to the frame."""
    lo = np.floor(outline.min(axis=1)).astype(np.int64) - 2
    hi = np.ceil(outline.max(axis=1)).astype(np.int64) + 3
    return np.clip(np.concatenate([lo, hi], axis=1), 0, size)


@lru_cache(maxsize=4)
def _noise_bank(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed Gaussian (sigma 2.5) pixel-noise tiles per frame size, split into positive and negative uint8 parts
    for cv2's saturating add/subtract: per-frame normal draws would cost more than drawing the face."""
    rng = np.random.default_rng([0x401CE, size])
    n = np.round(rng.normal(0.0, 2.5, (NOISE_TILES, size + NOISE_PAD, size + NOISE_PAD, 3)))
    return np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)


@lru_cache(maxsize=64)
def _background(size: int, top: tuple[int, ...], bottom: tuple[int, ...]) -> np.ndarray:
    a = np.linspace(0.0, 1.0, size)[:, None, None]
    col = (1 - a) * np.array(top, np.float64) + a * np.array(bottom, np.float64)
    img = np.round(np.broadcast_to(col, (size, size, 3))).astype(np.uint8)
    img.setflags(write=False)
    return img


def _geometry(lm: np.ndarray, sp: Speaker, size: int) -> dict[str, np.ndarray]:
    """Everything the painter needs, for all frames: fixed-point polygons [T, n, 2] and per-frame scalars."""
    lm = lm.astype(np.float64)
    o = (lm[:, 0] + lm[:, 16]) / 2.0
    ex = (lm[:, 16] - lm[:, 0]) / 2.0  # face x axis; one unit = half the jaw width
    ey = np.stack([-ex[:, 1], ex[:, 0]], axis=1)  # face y axis (down)
    unit = np.hypot(ex[:, 0], ex[:, 1])
    down = ey / np.maximum(unit, 1e-6)[:, None]
    px = unit / sp.face_half_width  # frame pixels per canonical pixel, pose scale included
    angle = np.degrees(np.arctan2(ex[:, 1], ex[:, 0]))

    def local(u: npt.ArrayLike, v: npt.ArrayLike) -> np.ndarray:
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        return o[:, None] + u[None, :, None] * ex[:, None] + v[None, :, None] * ey[:, None]

    top = (sp.forehead_height + JAW_Y0) / sp.face_half_width  # head top above the jaw line, in face units
    cos, sin = np.cos(_ARC), np.sin(_ARC)
    g: dict[str, np.ndarray] = {}
    if sp.hair_style == "long":
        g["hair_back"] = local(
            np.concatenate([1.16 * cos, [-1.18, -1.0, 1.0, 1.18]]),
            np.concatenate([-(top * 1.14) * sin, [1.0, 1.25, 1.25, 1.0]]),
        )
    g["neck"] = local([-0.42, 0.42, 0.5, -0.5], [0.6, 0.6, 3.0, 3.0])
    g["shirt"] = local([-0.45, 0.45, 1.3, 2.4, 2.4, -2.4, -2.4, -1.3], [1.5, 1.5, 1.75, 2.2, 4.0, 4.0, 2.2, 1.75])
    g["head"] = np.concatenate([lm[:, JAW], local(cos, -top * sin)[:, 1:-1]], axis=1)
    depth, grow, side = _HAIR_CAP[sp.hair_style]
    outer = local((1.0 + 0.5 * (grow - 1.0)) * cos, -(top * grow) * sin)
    inner = local(0.985 * cos[::-1], (side - (top * depth + side) * sin)[::-1])
    g["hair_cap"] = np.concatenate([outer, inner], axis=1)
    g["brow_r"], g["brow_l"] = lm[:, RIGHT_BROW], lm[:, LEFT_BROW]

    for k, sl in enumerate((RIGHT_EYE, LEFT_EYE)):
        eye = lm[:, sl]
        g[f"eye{k}"] = _smooth(eye, closed=True)
        g[f"eye{k}_box"] = _box(g[f"eye{k}"], size)
        g[f"lid_up{k}"] = _smooth(eye[:, [0, 1, 2, 3]], closed=False)
        g[f"lid_low{k}"] = _smooth(eye[:, [3, 4, 5, 0]], closed=False)
        g[f"iris{k}"] = (eye[:, 0] + eye[:, 3]) / 2.0 + 0.15 * px[:, None] * down
    g["iris_r"] = 0.23 * sp.eye_width * px

    g["bridge"] = lm[:, NOSE_BRIDGE] + 0.12 * ex[:, None]
    g["nose_base"] = _smooth(lm[:, NOSE_BASE], closed=False)
    g["nostrils"] = np.stack([(lm[:, 31] + lm[:, 32]) / 2.0, (lm[:, 34] + lm[:, 33]) / 2.0], 1) - 0.03 * ey[:, None]

    inner_lip = lm[:, INNER_LIP]
    g["outer_lip"] = _smooth(lm[:, OUTER_LIP], closed=True)
    g["lip_line"] = _smooth(inner_lip[:, [0, 1, 2, 3, 4]], closed=False)
    g["inner_lip"] = _smooth(inner_lip, closed=True)
    g["mouth_box"] = _box(g["inner_lip"], size)
    gap = np.linalg.norm(inner_lip[:, 6] - inner_lip[:, 2], axis=1)
    mouth_w = np.linalg.norm(inner_lip[:, 4] - inner_lip[:, 0], axis=1)
    g["mouth_open"] = gap >= 0.6 * px  # below that the lips touch: draw only the lip line
    g["teeth_on"] = gap > 0.2 * MAX_GAP * sp.mouth_width * px
    teeth_h = np.minimum(0.3 * gap, 3.5 * px)[:, None, None]
    g["teeth"] = np.concatenate([g["lip_line"], g["lip_line"][:, ::-1] + down[:, None] * teeth_h], axis=1)
    g["tongue"] = inner_lip[:, 6] - down * (0.15 * gap)[:, None]
    g["tongue_axes"] = np.stack([0.3 * mouth_w, 0.22 * gap], axis=1)
    g["angle"] = angle
    g["px"] = px
    for key in list(g):
        if g[key].ndim == 3 or key in ("iris0", "iris1", "tongue", "iris_r", "tongue_axes"):
            g[key] = _fix(g[key])
    return g


def _composite(img: np.ndarray, box: np.ndarray, outline: np.ndarray, paint) -> None:
    """Paint what `paint(patch, origin)` draws, clipped to the anti-aliased fixed-point polygon `outline`."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return
    origin = np.array([x0, y0], np.int32) << SHIFT
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [outline - origin], 255, cv2.LINE_AA, SHIFT)
    roi = img[y0:y1, x0:x1]
    patch = roi.copy()
    paint(patch, origin)
    m = mask[..., None].astype(np.uint16)
    roi[...] = ((patch.astype(np.uint16) * m + roi.astype(np.uint16) * (255 - m) + 127) // 255).astype(np.uint8)


def _paint(img: np.ndarray, g: dict[str, np.ndarray], i: int, sp: Speaker, occluder: np.ndarray) -> None:
    aa = cv2.LINE_AA
    skin = sp.skin
    if "hair_back" in g:
        cv2.fillPoly(img, [g["hair_back"][i]], sp.hair_color, aa, SHIFT)
    cv2.fillPoly(img, [g["neck"][i]], _shade(skin, 0.82), aa, SHIFT)
    cv2.fillPoly(img, [g["shirt"][i]], sp.shirt_color, aa, SHIFT)
    cv2.fillPoly(img, [g["head"][i]], skin, aa, SHIFT)
    cv2.fillPoly(img, [g["hair_cap"][i]], sp.hair_color, aa, SHIFT)
    px = float(g["px"][i])
    brow = max(1, int(round(sp.brow_thickness * px)))
    cv2.polylines(img, [g["brow_r"][i], g["brow_l"][i]], False, sp.brow_color, brow, aa, SHIFT)

    r_iris = int(g["iris_r"][i])
    for k in (0, 1):
        centre = g[f"iris{k}"][i]

        def eye_inside(patch: np.ndarray, origin: np.ndarray, centre: np.ndarray = centre) -> None:
            patch[...] = _SCLERA
            c = (int(centre[0] - origin[0]), int(centre[1] - origin[1]))
            cv2.circle(patch, c, r_iris, sp.iris_color, -1, aa, SHIFT)
            cv2.circle(patch, c, int(0.45 * r_iris), _PUPIL, -1, aa, SHIFT)
            hl = (c[0] + int(0.35 * r_iris), c[1] - int(0.35 * r_iris))
            cv2.circle(patch, hl, int(0.18 * r_iris), (250, 250, 250), -1, aa, SHIFT)

        _composite(img, g[f"eye{k}_box"][i], g[f"eye{k}"][i], eye_inside)
        cv2.polylines(img, [g[f"lid_low{k}"][i]], False, _shade(skin, 0.72), 1, aa, SHIFT)
        cv2.polylines(img, [g[f"lid_up{k}"][i]], False, _shade(skin, 0.35), max(1, int(round(1.2 * px))), aa, SHIFT)

    cv2.polylines(img, [g["bridge"][i]], False, _shade(skin, 0.82), 1, aa, SHIFT)
    cv2.polylines(img, [g["nose_base"][i]], False, _shade(skin, 0.68), 1, aa, SHIFT)
    axes = (int(round(1.5 * px * _SCALE)), int(round(0.9 * px * _SCALE)))
    angle = float(g["angle"][i])
    for c in g["nostrils"][i]:
        cv2.ellipse(img, (int(c[0]), int(c[1])), axes, angle, 0, 360, _shade(skin, 0.35), -1, aa, SHIFT)

    cv2.fillPoly(img, [g["outer_lip"][i]], sp.lip_color, aa, SHIFT)
    if not g["mouth_open"][i]:
        cv2.polylines(img, [g["lip_line"][i]], False, _shade(sp.lip_color, 0.55), 1, aa, SHIFT)
    else:

        def cavity(patch: np.ndarray, origin: np.ndarray) -> None:
            patch[...] = _CAVITY
            if g["teeth_on"][i]:
                cv2.fillPoly(patch, [g["teeth"][i] - origin], _TEETH, aa, SHIFT)
            t = g["tongue"][i] - origin
            ax = tuple(int(v) for v in g["tongue_axes"][i])
            cv2.ellipse(patch, (int(t[0]), int(t[1])), ax, angle, 180, 360, _TONGUE, -1, aa, SHIFT)

        _composite(img, g["mouth_box"][i], g["inner_lip"][i], cavity)

    if occluder[2] > 0:  # partial occluder (hard difficulty): a flat object passing in front of the face
        c = _fix(occluder[:2])
        ax = (int(round(occluder[2] * _SCALE)), int(round(occluder[3] * _SCALE)))
        colour = tuple(int(v) for v in occluder[5:8])
        cv2.ellipse(img, (int(c[0]), int(c[1])), ax, float(occluder[4]), 0, 360, colour, -1, aa, SHIFT)


def render_video(sp: Speaker, params: dict[str, np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render frames uint8 [T, size, size, 3] RGB and their landmarks [T, 68, 2] from render parameters.

    Deterministic: the pixel noise comes from fixed per-size tiles picked by `params["noise"]`.
    """
    jitter = params["jitter"].astype(np.float32)
    lm = face_landmarks(sp, {**params, "jitter": np.zeros_like(params["jitter"])}, size)
    g = _geometry(lm, sp, size)
    t = lm.shape[0]
    video = np.empty((t, size, size, 3), np.uint8)
    bg = _background(size, tuple(sp.background), tuple(sp.background2))
    pos, neg = _noise_bank(size)
    light = params["light"]
    xs = np.linspace(-1.0, 1.0, size, dtype=np.float32)[None, :, None]
    for i in range(t):
        img = bg.copy()
        _paint(img, g, i, sp, params["occluder"][i])
        gain, side = float(light[i, 0]), float(light[i, 1])
        if side != 0.0:
            lit = img.astype(np.float32) * (gain * (1.0 + side * xs))
            img = np.clip(lit + 0.5, 0, 255).astype(np.uint8)
        elif gain != 1.0:
            img = cv2.convertScaleAbs(img, alpha=gain)  # saturating round(x * gain), ~10x cheaper than numpy
        k, dy, dx = (int(v) for v in params["noise"][i])
        cv2.add(img, pos[k, dy : dy + size, dx : dx + size], dst=img)
        cv2.subtract(img, neg[k, dy : dy + size, dx : dx + size], dst=img)
        jx, jy = (int(v) for v in params["jitter"][i])
        video[i] = shift_image(img, jx, jy) if (jx or jy) else img
    return video, lm + jitter[:, None, :]


def shift_image(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Translate by whole pixels (content moves right by dx, down by dy), replicating the edges."""
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float32)
    h, w = img.shape[:2]
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
