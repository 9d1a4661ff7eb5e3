"""LRW (Lip Reading in the Wild): 500 words, 1.16 s clips, `lipread_mp4/WORD/{train,val,test}/WORD_NNNNN.mp4`.

Layout: `data.layouts.LRWLayout`; split rule: the folder names are the official splits (`LRW_SPLIT_FOLDERS`,
defined in `data.corpus_rules`, where the layout reads it, and re-exported here). LRW has no speaker labels, so
speaker-disjointness cannot be checked on a real copy (the check runs on labelled corpora only).
"""

from __future__ import annotations

from data.corpus import PreparedCorpus
from data.corpus_rules import LRW_SPLIT_FOLDERS

__all__ = ["LRW_SPLIT_FOLDERS", "LRWCorpus"]


class LRWCorpus(PreparedCorpus):
    root_env = "TALKBENCH_LRW_ROOT"
    card = "lrw"

    def __init__(self, name: str = "lrw", root=None, layout: str = "lrw", **kwargs):
        super().__init__(name, root, layout, **kwargs)
