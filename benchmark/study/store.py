"""The study's votes in SQLite (``<study>/votes.sqlite``, WAL): raters, the clip order each was given, when each
clip was shown to them, and their answers.

Why a restart loses nothing: every vote is its own committed transaction (``synchronous=FULL``: on disk before
the browser hears "recorded"), and a rater's next clip is not kept in memory but derived from the stored votes:
the first clip of their stored order they have not voted on.

Why a rater cannot vote as another: the rater's secret (128 random bits, handed to their browser once, in a
cookie) is the only identity the store accepts, and only its SHA-256 is stored, so the database itself cannot be
used to vote as anyone. A double vote for a clip is refused (:class:`VoteRefused` with status 409): the first
answer stands, so a reloaded or resubmitted page cannot change or double a vote.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmark.results import utc_now

__all__ = ["ANSWERS", "Rater", "Vote", "VoteRefused", "VoteStore"]

ANSWERS = ("real", "generated")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
    id INTEGER PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    clip_order TEXT NOT NULL,
    joined TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shown (
    rater INTEGER NOT NULL REFERENCES raters(id),
    clip TEXT NOT NULL,
    shown_at REAL NOT NULL,
    PRIMARY KEY (rater, clip)
);
CREATE TABLE IF NOT EXISTS votes (
    rater INTEGER NOT NULL REFERENCES raters(id),
    clip TEXT NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('real', 'generated')),
    lipsync INTEGER CHECK (lipsync BETWEEN 1 AND 5),
    naturalness INTEGER CHECK (naturalness BETWEEN 1 AND 5),
    seconds REAL,
    voted TEXT NOT NULL,
    PRIMARY KEY (rater, clip)
);
"""


class VoteRefused(Exception):
    """A request the store will not carry out; ``status`` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Rater:
    id: int
    name: str
    order: tuple[str, ...]  # the clip tokens in the order this rater sees them


@dataclass(frozen=True)
class Vote:
    rater: int
    clip: str
    answer: str
    lipsync: int | None
    naturalness: int | None
    seconds: float | None  # from the clip being shown to the vote, on the server's clock
    voted: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class VoteStore:
    """The votes of one study. Each method opens its own connection, so one store serves any number of threads
    (uvicorn's worker threads) and processes; SQLite's locks order the writes."""

    def __init__(self, path: str | Path, clips: Sequence[str]) -> None:
        self.path = Path(path)
        self.clips = tuple(clips)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: transactions are opened explicitly (BEGIN IMMEDIATE), so a check and the write it
        # guards cannot interleave with another request's
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    def join(self, name: str = "") -> tuple[Rater, str]:
        """A new rater and their secret. Their clip order is a fresh shuffle (from the OS's randomness: no rater
        can predict another's order), stored so that it survives restarts."""
        secret = secrets.token_urlsafe(16)  # 128 bits
        order = list(self.clips)
        random.SystemRandom().shuffle(order)
        name = name.strip()[:80]
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO raters (secret_sha256, name, clip_order, joined) VALUES (?, ?, ?, ?)",
                (_digest(secret), name, json.dumps(order), utc_now()),
            )
            rater_id = int(cur.lastrowid or 0)
        return Rater(rater_id, name, tuple(order)), secret

    def rater(self, secret: str | None) -> Rater | None:
        """The rater holding ``secret``; None for an absent or unknown (forged) secret."""
        if not secret or len(secret) > 64:
            return None
        with self._connect() as db:
            row = db.execute(
                "SELECT id, name, clip_order FROM raters WHERE secret_sha256 = ?", (_digest(secret),)
            ).fetchone()
        return Rater(int(row[0]), str(row[1]), tuple(json.loads(row[2]))) if row else None

    def voted(self, rater: Rater) -> set[str]:
        with self._connect() as db:
            return {str(r[0]) for r in db.execute("SELECT clip FROM votes WHERE rater = ?", (rater.id,))}

    def next_clip(self, rater: Rater) -> str | None:
        """The first clip of the rater's order without their vote (None: done), marked as shown now unless it was
        shown before (a reload or a restart keeps the first showing, so time taken counts from it)."""
        done = self.voted(rater)
        clip = next((c for c in rater.order if c not in done), None)
        if clip is not None:
            with self._connect() as db:
                db.execute(
                    "INSERT OR IGNORE INTO shown (rater, clip, shown_at) VALUES (?, ?, ?)",
                    (rater.id, clip, time.time()),
                )
        return clip

    def vote(
        self,
        secret: str | None,
        clip: str,
        answer: str,
        lipsync: int | None = None,
        naturalness: int | None = None,
    ) -> Vote:
        """Record the vote of the rater holding ``secret``; :class:`VoteRefused` (403 unknown secret, 404 a clip
        not assigned to that rater, 409 a second vote, 422 an answer outside the form) otherwise."""
        rater = self.rater(secret)
        if rater is None:
            raise VoteRefused(403, "unknown rater: join the study first")
        if clip not in rater.order:
            raise VoteRefused(404, "no such clip in this rater's study")
        if answer not in ANSWERS:
            raise VoteRefused(422, f"answer must be one of {', '.join(ANSWERS)}")
        for score in (lipsync, naturalness):
            if score is not None and not 1 <= score <= 5:
                raise VoteRefused(422, "scores are 1 to 5")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                shown = db.execute(
                    "SELECT shown_at FROM shown WHERE rater = ? AND clip = ?", (rater.id, clip)
                ).fetchone()
                seconds = round(time.time() - float(shown[0]), 3) if shown else None
                vote = Vote(rater.id, clip, answer, lipsync, naturalness, seconds, utc_now())
                db.execute("INSERT INTO votes VALUES (?, ?, ?, ?, ?, ?, ?)", _row(vote))
                db.execute("COMMIT")
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                raise VoteRefused(409, "this clip already has your vote; the first answer stands") from None
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return vote

    def votes(self) -> list[Vote]:
        """Every stored vote, by rater then time."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT rater, clip, answer, lipsync, naturalness, seconds, voted FROM votes ORDER BY rater, rowid"
            ).fetchall()
        return [Vote(int(r[0]), str(r[1]), str(r[2]), r[3], r[4], r[5], str(r[6])) for r in rows]

    def raters(self) -> list[Rater]:
        with self._connect() as db:
            rows = db.execute("SELECT id, name, clip_order FROM raters ORDER BY id").fetchall()
        return [Rater(int(r[0]), str(r[1]), tuple(json.loads(r[2]))) for r in rows]


def _row(vote: Vote) -> tuple[int, str, str, int | None, int | None, float | None, str]:
    return (vote.rater, vote.clip, vote.answer, vote.lipsync, vote.naturalness, vote.seconds, vote.voted)
