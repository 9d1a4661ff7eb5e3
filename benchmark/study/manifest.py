"""The study manifest (``<study>/study.json``): which opaque clip file holds what.

It is the study's only record of which method made a clip, so the server reads it but never serves it: raters
see tokens alone (``<study>/clips/<token>.mp4``). Kinds: ``real`` (a test clip of the corpus), ``generated`` (a
method's clip) and ``attention`` (a clearly broken clip whose right answer is "generated": a rater who calls it
real was not watching, and their votes are left out of the report).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmark.results import write_json_atomic

__all__ = [
    "CLIPS_DIR",
    "KINDS",
    "MANIFEST",
    "REAL_LABEL",
    "SCHEMA",
    "TOKEN_RE",
    "VOTES_DB",
    "Manifest",
    "StudyClip",
    "StudyError",
    "StudyMethod",
    "load_manifest",
]

SCHEMA = "talkbench-study/1"
MANIFEST = "study.json"
CLIPS_DIR = "clips"
VOTES_DB = "votes.sqlite"
KINDS = ("real", "generated", "attention")
#: the row of the real clips in the report (the paper's Table 2 lists them as a method)
REAL_LABEL = "Real"
#: a clip token: 64 random bits in hex, the whole of what a rater's browser ever learns about a clip
TOKEN_RE = re.compile(r"[0-9a-f]{16}")


class StudyError(ValueError):
    """A study that cannot be made, read or served as asked; the message says what to do."""


@dataclass(frozen=True)
class StudyClip:
    token: str
    kind: str  # real | generated | attention
    method: str | None  # the row it counts for: a method's label, REAL_LABEL, None for attention checks
    run: str | None  # the run folder's name (generated clips)
    clip_id: str | None  # the corpus test clip it shows (None: an attention check made from another study clip)
    speaker: str = ""
    source: str | None = None  # the token an attention check was made from

    @property
    def file(self) -> str:
        return f"{self.token}.mp4"


@dataclass(frozen=True)
class StudyMethod:
    label: str  # the row name in the report
    run: str  # run.name
    model: str | None
    folder: str  # the run folder the clips were copied from


@dataclass
class Manifest:
    dataset: str
    seed: int
    created: str
    methods: list[StudyMethod]
    clips: list[StudyClip]
    settings: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    def by_token(self) -> dict[str, StudyClip]:
        return {c.token: c for c in self.clips}

    def rows(self) -> list[str]:
        """The report's rows: the methods in the order they were asked for, then the real clips."""
        rows = [m.label for m in self.methods]
        return rows + ([REAL_LABEL] if any(c.kind == "real" for c in self.clips) else [])

    def save(self, study_dir: Path) -> Path:
        return write_json_atomic(study_dir / MANIFEST, asdict(self))


def load_manifest(study_dir: str | Path) -> Manifest:
    """The manifest of the study in ``study_dir``; a StudyError naming the folder when there is none."""
    path = Path(study_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(
            f"{study_dir}: not a study folder (no {MANIFEST}); make one with `bench study create`"
        ) from None
    except (OSError, ValueError) as err:
        raise StudyError(f"{path}: unreadable study manifest ({err})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise StudyError(
            f"{path}: not a {SCHEMA} manifest (schema {data.get('schema') if isinstance(data, dict) else None!r})"
        )
    try:
        clips = [StudyClip(**c) for c in data["clips"]]
        methods = [StudyMethod(**m) for m in data["methods"]]
        return Manifest(
            str(data["dataset"]), int(data["seed"]), str(data["created"]), methods, clips, dict(data["settings"])
        )
    except (KeyError, TypeError) as err:
        raise StudyError(f"{path}: malformed study manifest ({err})") from None
