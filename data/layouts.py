"""On-disk layouts of the corpora (docs/corpora.md): where a clip's files live and how to find them again.

The synthetic corpus is written in these layouts and read back through the same `scan` code that reads a real
LRW / CREMA-D / VoxCeleb2 / LRS2 / LRS3 download. A split file (`splits/{train,val,test}.txt`, one relative video
path per line) overrides a layout's own split rule. Each corpus's naming and split rules are in `data.corpus_rules`
(re-exported by the corpus modules).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from data.clip import Clip
from data.corpus_rules import (
    CREMA_DH_TEST_ACTORS,
    CREMA_EMOTIONS,
    CREMA_LEVELS,
    CREMA_SENTENCES,
    LRS2_SPLIT_LISTS,
    LRS3_PARTS,
    LRW_SPLIT_FOLDERS,
    VOXCELEB2_PARTS,
)

SPLITS = ("train", "val", "test")


class LayoutError(ValueError):
    """A corpus root does not look like the layout it was given."""


@dataclass(frozen=True)
class ClipRef:
    """Where one clip lives. clip_id = video path relative to the root, without extension, '/'-separated."""

    clip_id: str
    video: Path
    audio: Path | None
    speaker_id: str
    split: str
    word: str | None = None


def read_split_files(root: Path, folder: Path | None = None) -> dict[str, str] | None:
    """clip_id -> split from root/splits/*.txt (or `folder`/*.txt), or None when there are no split files."""
    folder = Path(folder) if folder is not None else Path(root) / "splits"
    if not folder.is_dir():
        if folder != Path(root) / "splits":
            raise LayoutError(f"{folder}: split folder does not exist (expected train.txt / val.txt / test.txt)")
        return None
    mapping: dict[str, str] = {}
    for split in SPLITS:
        f = folder / f"{split}.txt"
        if not f.exists():
            continue
        for line in f.read_text().splitlines():
            line = line.strip()
            if line:
                mapping[str(Path(line).with_suffix("")).replace("\\", "/").removeprefix("./")] = split
    return mapping


def write_split_files(root: Path, refs: dict[str, list[str]]) -> None:
    """Write root/splits/<split>.txt with one relative video path per line (sorted)."""
    folder = Path(root) / "splits"
    folder.mkdir(parents=True, exist_ok=True)
    for split, paths in refs.items():
        if split not in SPLITS:
            raise LayoutError(f"unknown split {split!r}; splits are {SPLITS}")
        (folder / f"{split}.txt").write_text("".join(f"{p}\n" for p in sorted(paths)))


class Layout:
    name: str = ""
    video_suffix: str = ".mp4"

    def _candidates(self, root: Path) -> list[Path]:
        raise LayoutError(f"layout {self.name!r} cannot list clips")

    def _ref(self, root: Path, video: Path) -> ClipRef:
        raise LayoutError(f"layout {self.name!r} cannot describe {video}")

    def clip_path(self, root: Path, *, speaker: int, index: int, split: str, word: str) -> tuple[Path, Path | None]:
        raise LayoutError(f"layout {self.name!r} cannot place clips")

    def write_header(self, video_path: Path, clip: Clip) -> None:
        """Extra per-clip files the real corpus has next to each video (LRW's .txt); none by default."""

    def scan(self, root: str | os.PathLike, split_dir: str | os.PathLike | None = None) -> list[ClipRef]:
        """Every clip under `root`, sorted by clip_id, with its split (split files win over the layout's rule).

        Split files are read from `split_dir` when given, else from root/splits/ when it exists; a clip the
        files do not list gets split "" (left out of every split).
        """
        root = Path(root)
        if not root.is_dir():
            raise LayoutError(f"{root}: corpus root does not exist")
        refs = [self._ref(root, v) for v in self._candidates(root)]
        if not refs:
            raise LayoutError(
                f"{root}: no {self.video_suffix} clips found in the {self.name!r} layout (expected e.g. {self.example})"
            )
        override = read_split_files(root, Path(split_dir) if split_dir else None)
        if override is not None:
            refs = [
                ClipRef(r.clip_id, r.video, r.audio, r.speaker_id, override.get(r.clip_id, ""), r.word) for r in refs
            ]
        return sorted(refs, key=lambda r: r.clip_id)

    example = ""


def _rel_id(root: Path, video: Path) -> str:
    return video.relative_to(root).with_suffix("").as_posix()


class LRWLayout(Layout):
    """lipread_mp4/WORD/{train,val,test}/WORD_NNNNN.{mp4,txt}. LRW has no speaker labels; the synthetic
    corpus records its speaker in the truth sidecar, which the loader reads when present."""

    name = "lrw"
    example = "ABOUT/test/ABOUT_00001.mp4"

    def _candidates(self, root: Path) -> list[Path]:
        return [p for p in root.glob("*/*/*.mp4") if p.parent.name in LRW_SPLIT_FOLDERS]

    def _ref(self, root: Path, video: Path) -> ClipRef:
        return ClipRef(_rel_id(root, video), video, None, "", video.parent.name, video.parent.parent.name)

    def clip_path(self, root, *, speaker, index, split, word):
        return Path(root) / word / split / f"{word}_{index + 1:05d}.mp4", None

    def write_header(self, video_path: Path, clip: Clip) -> None:
        # LRW's per-clip .txt header; Duration is the word's length in seconds.
        word = clip.word or video_path.parent.parent.name
        dur = clip.truth.get("word_duration", clip.duration)
        video_path.with_suffix(".txt").write_text(f"Text: {word}\nConf: 1\n\nDuration: {dur:.6f} seconds\n")


class CremaLayout(Layout):
    """VideoFlash/AAAA_SSS_EEE_LL.flv + AudioWAV/AAAA_SSS_EEE_LL.wav; actor AAAA is the speaker.
    Default split: the Diffused Heads test actors are test, everything else train."""

    name = "crema"
    video_suffix = ".flv"
    example = "VideoFlash/1015_DFA_ANG_XX.flv + AudioWAV/1015_DFA_ANG_XX.wav"

    def _candidates(self, root: Path) -> list[Path]:
        return list((root / "VideoFlash").glob("*.flv"))

    def _ref(self, root: Path, video: Path) -> ClipRef:
        actor = video.stem.split("_")[0]
        wav = root / "AudioWAV" / f"{video.stem}.wav"
        split = "test" if actor in CREMA_DH_TEST_ACTORS else "train"
        return ClipRef(_rel_id(root, video), video, wav if wav.exists() else None, actor, split, None)

    def clip_path(self, root, *, speaker, index, split, word):
        n = len(CREMA_SENTENCES) * len(CREMA_EMOTIONS) * len(CREMA_LEVELS)
        if index >= n:
            raise LayoutError(f"CREMA-D naming allows {n} clips per actor, asked for clip {index}")
        sent = CREMA_SENTENCES[index % len(CREMA_SENTENCES)]
        emo = CREMA_EMOTIONS[(index // len(CREMA_SENTENCES)) % len(CREMA_EMOTIONS)]
        lvl = CREMA_LEVELS[index // (len(CREMA_SENTENCES) * len(CREMA_EMOTIONS))]
        stem = f"{1001 + speaker}_{sent}_{emo}_{lvl}"
        return Path(root) / "VideoFlash" / f"{stem}.flv", Path(root) / "AudioWAV" / f"{stem}.wav"


class VoxCeleb2Layout(Layout):
    """{dev,test}/mp4/idXXXXX/<video id>/NNNNN.mp4; the idXXXXX folder is the speaker.
    Official split: dev (train) / test; split files add a val split."""

    name = "voxceleb2"
    example = "test/mp4/id00017/01dfn2spqyE/00001.mp4"

    def _candidates(self, root: Path) -> list[Path]:
        return [p for part in VOXCELEB2_PARTS for p in (root / part / "mp4").glob("id*/*/*.mp4")]

    def _ref(self, root: Path, video: Path) -> ClipRef:
        part = video.relative_to(root).parts[0]
        return ClipRef(_rel_id(root, video), video, None, video.parent.parent.name, VOXCELEB2_PARTS.get(part, "train"))

    def clip_path(self, root, *, speaker, index, split, word):
        # the part whose official split this is; val clips (the synthetic corpus's) go to dev, as val speakers do
        part = next((p for p, official in VOXCELEB2_PARTS.items() if official == split), "dev")
        # a stable 11-character YouTube-like id per (speaker, 5-clip group), like one upload with several clips
        vid = _stable_id(f"{speaker}:{index // 5}")
        return Path(root) / part / "mp4" / f"id{12 + speaker:05d}" / vid / f"{index % 5 + 1:05d}.mp4", None


def _stable_id(key: str) -> str:
    """An 11-character YouTube-like id, the same for the same key (synthetic clips named like real uploads)."""
    digest = hashlib.sha1(key.encode()).hexdigest()
    return "".join(c if i % 3 else c.upper() for i, c in enumerate(digest[:11]))


class LRS2Layout(Layout):
    """mvlrs_v1/main/<programme>/NNNNN.mp4 (+ .txt transcript). The official split is the root list a clip is in
    (`LRS2_SPLIT_LISTS`); a clip in none is left out. LRS2 has no speaker labels (a programme has several)."""

    name = "lrs2"
    example = "main/6330311066473698535/00011.mp4 + test.txt"

    def _candidates(self, root: Path) -> list[Path]:
        return list((root / "main").glob("*/*.mp4"))

    def _ref(self, root: Path, video: Path) -> ClipRef:
        rel = video.relative_to(root / "main").with_suffix("").as_posix()
        return ClipRef(_rel_id(root, video), video, None, "", _lrs2_splits(root).get(rel, ""), None)

    def clip_path(self, root, *, speaker, index, split, word):
        # one programme per 5-clip group of a speaker, as a broadcast holds several clips
        programme = str(int(hashlib.sha1(f"{speaker}:{index // 5}".encode()).hexdigest()[:15], 16))
        return Path(root) / "main" / programme / f"{index % 5 + 1:05d}.mp4", None

    def write_header(self, video_path: Path, clip: Clip) -> None:
        text = clip.transcript or clip.word or ""
        video_path.with_suffix(".txt").write_text(f"Text:  {text.upper()}\nConf:  1\n")


def _lrs2_splits(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for split, name in LRS2_SPLIT_LISTS.items():
        path = Path(root) / name
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.split():
                    out[line.split()[0]] = split
    return out


class LRS3Layout(Layout):
    """{trainval,test}/<talk id>/NNNNN.mp4 (+ .txt); the folder is the official split (`LRS3_PARTS`), the talk
    (one TED speaker) the speaker; split files add a val split."""

    name = "lrs3"
    example = "test/0Fi83BHQsMA/00002.mp4"

    def _candidates(self, root: Path) -> list[Path]:
        return [p for part in LRS3_PARTS for p in (root / part).glob("*/*.mp4")]

    def _ref(self, root: Path, video: Path) -> ClipRef:
        part = video.relative_to(root).parts[0]
        return ClipRef(_rel_id(root, video), video, None, video.parent.name, LRS3_PARTS.get(part, "train"), None)

    def clip_path(self, root, *, speaker, index, split, word):
        part = next((p for p, official in LRS3_PARTS.items() if official == split), "trainval")
        return Path(root) / part / _stable_id(f"lrs3:{speaker}") / f"{index + 1:05d}.mp4", None

    write_header = LRS2Layout.write_header


LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (LRWLayout(), CremaLayout(), VoxCeleb2Layout(), LRS2Layout(), LRS3Layout())
}


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, LAYOUTS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise LayoutError(f"unknown layout {name!r}: valid layouts are {sorted(LAYOUTS)}{hint}") from None
