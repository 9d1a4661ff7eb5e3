"""LRS2 (Lip Reading Sentences 2, BBC): `mvlrs_v1/main/<programme>/NNNNN.mp4`, 160x160 25 fps sentence clips.

Layout: `data.layouts.LRS2Layout`; split rule `LRS2_SPLIT_LISTS` (the root's train/val/test.txt name each clip's
official split; defined in `data.corpus_rules`, where the layout reads it, and re-exported here). LRS2 has no
speaker labels, so speaker-disjointness cannot be checked. Wav2Lip's benchmark (`--protocol wav2lip_lrs2`,
data/pairs.py) drives each test clip with another's audio.
"""

from __future__ import annotations

from data.corpus import PreparedCorpus
from data.corpus_rules import LRS2_SPLIT_LISTS

__all__ = ["LRS2_SPLIT_LISTS", "LRS2Corpus"]


class LRS2Corpus(PreparedCorpus):
    root_env = "TALKBENCH_LRS2_ROOT"
    card = "lrs2"

    def __init__(self, name: str = "lrs2", root=None, layout: str = "lrs2", **kwargs):
        super().__init__(name, root, layout, **kwargs)
