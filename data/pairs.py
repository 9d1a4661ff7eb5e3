"""Wav2Lip's benchmark protocol: each test video driven by the audio of another test clip, from a pinned pair list.

Wav2Lip (evaluation/gen_videos_from_filelist.py, test_filelists/{lrs2,lrs3,lrw}.txt) scores lip-sync on videos
whose mouth must follow audio that is not their own: line i of a list reads `<audio clip> <video clip>` (paths
relative to the corpus root, without extension; LRW's lists give only the clip's base name), and output i is the
video clip re-synthesised to the audio clip's speech. Scored this way, a model cannot earn sync by copying the mouth
of its reference frame, which `pose_prior: video` on a clip's own audio allows.

Here a pair becomes one test `Clip` (data.clip): the video clip's frames, the audio clip's samples, T = N // 640
frames of the driving audio (the suite's clip contract; the official script counts mel windows instead, which
differs by at most a frame or two). The clip id is the line number, the name the official script gives its output
(`<line>.mp4`), so a folder of those outputs matches the test list as it is. A pair whose video is shorter than its
audio is left out, as the official script skips it, and counted. The real clip behind a pair (its own video with
its own audio) is what the GT row scores: `real_counterpart`.

Lists are pinned by the sha256 of their canonical text (lines stripped, empty ones dropped, each ended by a newline;
for the official files, the bytes as published). Wav2Lip's lists are BBC-licensed and not shipped: a protocol names
the published hash, and the user passes their copy. A corpus without a published list (the synthetic one) gets a
generated list: seeded, each test clip driven by a clip of another speaker whose audio is not longer than it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from data.clip import SAMPLES_PER_FRAME, Clip

GENERATED = "generated"


class PairListError(ValueError):
    """A pair list that cannot be used as given (missing, altered, naming clips the corpus does not have)."""


@dataclass(frozen=True)
class PairList:
    """(audio clip, video clip) per line, and what pins the list: its sha256 and where it came from."""

    pairs: tuple[tuple[str, str], ...]
    sha256: str
    source: str


def canonical_text(pairs: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{a} {v}\n" for a, v in pairs)


def parse_pair_text(text: str, source: str) -> PairList:
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise PairListError(f"{source}: line {n} is not '<audio clip> <video clip>': {line.strip()!r}")
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise PairListError(f"{source}: the pair list is empty")
    body = canonical_text(pairs)
    return PairList(tuple(pairs), hashlib.sha256(body.encode()).hexdigest(), source)


def read_pair_list(path: str | Path, sha256: str | None = None) -> PairList:
    """The list in `path` (Wav2Lip's test_filelists format); PairListError when it is missing, malformed, or its
    hash is not the pinned `sha256` (another list would make other numbers under the protocol's name)."""
    path = Path(path)
    if not path.is_file():
        raise PairListError(f"{path}: pair list not found")
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise PairListError(f"{path}: not a text file ({err})") from None
    pairs = parse_pair_text(text, str(path))
    if sha256 and pairs.sha256 != sha256:
        raise PairListError(
            f"{path}: sha256 {pairs.sha256} is not the protocol's pinned {sha256} (a different pair list; pass the "
            "published one, or override run.pairs_sha256 knowingly: the numbers are then not the protocol's)"
        )
    return pairs


def generate_pair_list(clips: Sequence[Clip], seed: int = 0) -> PairList:
    """A seeded list for a corpus without a published one: every test clip (as video) driven by the audio of a clip
    of another speaker that fits in it (no longer than the video), chosen at random; a clip nothing fits is left
    out. Deterministic in (seed, clip ids, lengths): the list's hash pins it in the protocol like a published one."""
    rng = np.random.default_rng(seed)
    pairs = []
    for video in clips:
        fits = [
            a.clip_id
            for a in clips
            if a.clip_id != video.clip_id
            and (a.speaker_id != video.speaker_id or not a.speaker_id)
            and a.audio.shape[0] // SAMPLES_PER_FRAME <= video.num_frames
        ]
        if fits:
            pairs.append((fits[int(rng.integers(len(fits)))], video.clip_id))
    if not pairs:
        raise PairListError("no test clip can be driven by another speaker's audio (too few clips or speakers)")
    return parse_pair_text(canonical_text(pairs), f"{GENERATED} (seed {seed})")


def _resolver(clips: Sequence[Clip]) -> dict[str, Clip]:
    """Name -> clip for every way a list may name a clip: its id, each trailing part of its id (LRS2/LRS3 lists are
    relative to a sub-folder of the root), its base name (LRW lists). Ambiguous names are dropped."""
    names: dict[str, Clip | None] = {}
    for clip in clips:
        parts = clip.clip_id.split("/")
        for k in range(len(parts)):
            key = "/".join(parts[k:])
            names[key] = None if key in names and names[key] is not clip else clip
    return {k: c for k, c in names.items() if c is not None}


def paired_clips(clips: Sequence[Clip], pairs: PairList) -> tuple[list[Clip], list[str]]:
    """The test clips of a pair protocol (see the module doc) and notes on the lines left out."""
    named = _resolver(clips)
    unknown = [n for pair in pairs.pairs for n in pair if n not in named]
    if unknown:
        raise PairListError(
            f"{pairs.source}: {len(unknown)} names match no test clip of the corpus (e.g. {', '.join(unknown[:3])}); "
            "is this the list for this corpus?"
        )
    out: list[Clip] = []
    short = 0
    for line, (audio_name, video_name) in enumerate(pairs.pairs):
        source, video = named[audio_name], named[video_name]
        t = source.audio.shape[0] // SAMPLES_PER_FRAME
        if video.num_frames < t or t < 1:
            short += 1  # gen_videos_from_filelist.py: `if len(full_frames) < len(mel_chunks): continue`
            continue
        out.append(
            Clip(
                clip_id=str(line),
                video=video.video[:t],
                audio=source.audio[: t * SAMPLES_PER_FRAME],
                speaker_id=video.speaker_id,
                split=video.split,
                landmarks=video.landmarks[:t] if video.landmarks is not None else None,
                truth={
                    "pair": {
                        "line": line,
                        "audio": source.clip_id,
                        "video": video.clip_id,
                        "list": pairs.sha256,
                        "lines": len(pairs.pairs),
                    },
                    "own_audio": video.audio[: t * SAMPLES_PER_FRAME],
                },
            )
        )
    notes = [f"{short} of {len(pairs.pairs)} pairs left out: the video is shorter than the audio"] if short else []
    return out, notes


def real_counterpart(clip: Clip) -> Clip:
    """The real clip behind a test clip: a pair's video with its own audio (what the GT row scores); any other clip
    is its own counterpart."""
    own = clip.truth.get("own_audio") if clip.truth else None
    if own is None:
        return clip
    return replace(clip, audio=np.asarray(own, np.float32), truth={"pair": clip.truth.get("pair")})
