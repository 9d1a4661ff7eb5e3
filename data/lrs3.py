"""LRS3 (TED / TEDx): `{trainval,test}/<talk id>/NNNNN.mp4`, 224x224 25 fps sentence clips.

Layout: `data.layouts.LRS3Layout`; split rule `LRS3_PARTS` (the folder: trainval = train, test = test; defined in
`data.corpus_rules`, where the layout reads it, and re-exported here); the talk id is the speaker, and
`val_speakers` trainval talks become val. Wav2Lip's benchmark (`--protocol wav2lip_lrs3`, data/pairs.py) drives
each test clip with another's audio.
"""

from __future__ import annotations

from data.corpus import PreparedCorpus
from data.corpus_rules import LRS3_PARTS

__all__ = ["LRS3_PARTS", "LRS3Corpus"]


class LRS3Corpus(PreparedCorpus):
    root_env = "TALKBENCH_LRS3_ROOT"
    card = "lrs3"

    def __init__(self, name: str = "lrs3", root=None, layout: str = "lrs3", **kwargs):
        super().__init__(name, root, layout, **kwargs)
