"""Which clips a run generates and scores: the corpus's test split, or under a pair list (Wav2Lip's benchmark
protocol, data/pairs.py) one clip per pair; and what of that choice enters the protocol hash."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from benchmark.distributed import log
from data.clip import Clip
from data.corpus import LayoutCorpus
from data.pairs import GENERATED, PairList, PairListError, generate_pair_list, paired_clips, read_pair_list


def pair_list(cfg: DictConfig, corpus: LayoutCorpus) -> PairList | None:
    """The run's pair list (`run.pairs`, data/pairs.py), or None when every test clip keeps its own audio."""
    settings = cfg.run.get("pairs") or {}
    source = settings.get("list")
    if not source:
        if settings.get("sha256"):
            raise PairListError(
                f"protocol {cfg.run.get('protocol')!r} scores the pair list with sha256 {settings.get('sha256')}: "
                "pass your copy with run.pairs.list=/path/to/list.txt (Wav2Lip's evaluation/test_filelists/; not "
                "shipped)"
            )
        return None
    if source == GENERATED:
        return generate_pair_list(corpus.clips("test"), int(settings.get("seed", 0)))
    return read_pair_list(source, settings.get("sha256"))


def test_clips(cfg: DictConfig, corpus: LayoutCorpus) -> list[Clip]:
    """The clips a run generates and scores: the corpus's test split, or under a pair list one clip per pair (the
    first `run.limit` of either)."""
    pairs = pair_list(cfg, corpus)
    if pairs is None:
        return corpus.clips("test", limit=cfg.run.limit)
    clips, notes = paired_clips(corpus.clips("test"), pairs)
    for note in notes:
        log(f"[pairs] {pairs.source}: {note}")
    return clips[: cfg.run.limit or None]


def pairs_setting(clips: Sequence[Clip]) -> dict[str, Any]:
    """What of a pair list the protocol hash records, read from the clips it made (each carries the list's sha256
    and length): nothing without one, so the hash of every protocol without a list stays what it was."""
    made = {(p["list"], p["lines"]) for c in clips if (p := (c.truth or {}).get("pair"))}
    if not made:
        return {}
    if len(made) > 1:
        raise ValueError(f"test clips made by {len(made)} different pair lists cannot form one protocol")
    sha256, lines = made.pop()
    return {"pairs": {"sha256": sha256, "n": lines}}
