"""Synthetic speakers: a drawn identity (colours and face geometry) plus a voice and habits.

Geometry is given in "canonical pixels": pixels of a 128x128 frame with the face at rest, origin on the
midline at eye level, y pointing down. The renderer scales it to the requested frame size, so a speaker looks
the same at 96x96 and 128x128.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Voice ranges of the design prototype that trained a small SyncNet in seconds (docs/synthetic_corpus.md).
MALE_F0 = (90.0, 150.0)
FEMALE_F0 = (170.0, 250.0)
MALE_FORMANT_SCALE = (0.92, 1.03)
FEMALE_FORMANT_SCALE = (1.08, 1.20)
BLINK_RATE = (0.1, 0.6)  # blinks per second (docs/synthetic_corpus.md)

HAIR_STYLES = ("short", "long", "fringe", "buzz")


@dataclass(frozen=True)
class Speaker:
    """One synthetic identity. Colours are RGB tuples of ints 0-255; lengths are canonical pixels."""

    index: int
    speaker_id: str
    sex: str  # "male" | "female": picks the f0 and formant ranges
    # voice and habits
    f0: float  # Hz
    formant_scale: float
    speaking_rate: float  # syllables are 1/rate as long
    blink_rate: float  # Poisson rate, blinks per second
    # colours
    skin: tuple[int, int, int]
    hair_color: tuple[int, int, int]
    hair_style: str
    background: tuple[int, int, int]
    background2: tuple[int, int, int]  # bottom colour of the vertical gradient
    lip_color: tuple[int, int, int]
    iris_color: tuple[int, int, int]
    brow_color: tuple[int, int, int]
    shirt_color: tuple[int, int, int]
    # face geometry (canonical pixels)
    face_half_width: float  # jaw points 0 and 16 lie this far from the midline
    face_height: float  # eye line to chin
    jaw_power: float  # superellipse exponent of the jaw: 2 = round, 3 = square
    forehead_height: float  # eye line to top of the head
    eye_spacing: float  # midline to eye centre
    eye_width: float  # corner to corner
    eye_open_ear: float  # eye aspect ratio of the open eye
    brow_height: float  # eye line to brow
    brow_thickness: float
    nose_length: float
    nose_width: float
    mouth_y: float  # eye line to the lip line
    mouth_width: float
    upper_lip: float  # thickness
    lower_lip: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Speaker:
        kw = dict(d)
        for key, value in kw.items():
            if isinstance(value, list):
                kw[key] = tuple(int(v) for v in value)
        return cls(**kw)


def _colour(rng: np.random.Generator, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(rng.integers(a, b + 1)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def _skin(rng: np.random.Generator) -> tuple[int, int, int]:
    # A 1-D family from dark to light keeps skins plausible; small per-channel jitter keeps them distinct.
    t = rng.uniform(0.0, 1.0)
    dark, light = np.array([96, 62, 44]), np.array([246, 214, 190])
    rgb = dark + t * (light - dark) + rng.normal(0.0, 6.0, 3)
    return tuple(int(v) for v in np.clip(rgb, 0, 255))  # type: ignore[return-value]


def make_speaker(index: int, rng: np.random.Generator) -> Speaker:
    """Draw speaker `index`; even indices are "male" voices, odd ones "female", so every split mixes both."""
    sex = "male" if index % 2 == 0 else "female"
    f0_range = MALE_F0 if sex == "male" else FEMALE_F0
    fs_range = MALE_FORMANT_SCALE if sex == "male" else FEMALE_FORMANT_SCALE
    skin = _skin(rng)
    # hair: dark browns, or a light family from auburn to blond (independent channels would give pink hair)
    if rng.uniform() < 0.6:
        hair = _colour(rng, (20, 14, 10), (70, 50, 36))
    else:
        h = np.array([150, 72, 36]) + rng.uniform() * np.array([80, 120, 90]) + rng.normal(0.0, 5.0, 3)
        red, green, blue = (int(v) for v in np.clip(h, 0, 255))
        hair = (red, green, blue)
    bg = _colour(rng, (40, 40, 40), (220, 220, 220))
    bg2 = tuple(int(np.clip(c + rng.integers(-60, 61), 0, 255)) for c in bg)
    lip = tuple(int(np.clip(s * f, 0, 255)) for s, f in zip(skin, (0.85, 0.55, 0.58)))
    style = HAIR_STYLES[int(rng.integers(0, len(HAIR_STYLES)))]
    if sex == "female" and rng.uniform() < 0.5:
        style = "long"
    return Speaker(
        index=index,
        speaker_id=f"spk{index:02d}",
        sex=sex,
        f0=float(rng.uniform(*f0_range)),
        formant_scale=float(rng.uniform(*fs_range)),
        speaking_rate=float(rng.uniform(0.9, 1.25)),
        blink_rate=float(rng.uniform(*BLINK_RATE)),
        skin=skin,
        hair_color=hair,
        hair_style=style,
        background=bg,
        background2=bg2,  # type: ignore[arg-type]
        lip_color=lip,  # type: ignore[arg-type]
        iris_color=_colour(rng, (30, 30, 20), (120, 140, 160)),
        brow_color=tuple(int(c * 0.8) for c in hair),  # type: ignore[arg-type]
        shirt_color=_colour(rng, (20, 20, 20), (230, 230, 230)),
        face_half_width=float(rng.uniform(39.0, 45.0)),
        face_height=float(rng.uniform(48.0, 55.0)),
        jaw_power=float(rng.uniform(2.0, 3.0)),
        forehead_height=float(rng.uniform(38.0, 46.0)),
        eye_spacing=float(rng.uniform(15.0, 18.5)),
        eye_width=float(rng.uniform(12.5, 15.5)),
        eye_open_ear=float(rng.uniform(0.27, 0.33)),
        brow_height=float(rng.uniform(8.5, 11.5)),
        brow_thickness=float(rng.uniform(1.8, 3.2)),
        nose_length=float(rng.uniform(15.0, 19.0)),
        nose_width=float(rng.uniform(10.0, 13.5)),
        mouth_y=float(rng.uniform(30.0, 34.0)),
        mouth_width=float(rng.uniform(28.0, 35.0)),
        upper_lip=float(rng.uniform(2.8, 4.2)),
        lower_lip=float(rng.uniform(3.6, 5.4)),
    )


def make_speakers(n: int, seed: int) -> list[Speaker]:
    """`n` speakers, each from its own random stream so that adding speakers never changes earlier ones."""
    return [make_speaker(i, np.random.default_rng([seed, 0x5EA, i])) for i in range(n)]
