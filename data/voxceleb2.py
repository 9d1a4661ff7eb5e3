"""VoxCeleb2: `{dev,test}/mp4/idXXXXX/<youtube id>/NNNNN.mp4`, 224x224 25 fps, ~6k speakers, ~1.1M clips.

Layout: `data.layouts.VoxCeleb2Layout`; split rule `VOXCELEB2_PARTS` (dev = train, test = test; the official
splits are speaker-disjoint; defined in `data.corpus_rules`, where the layout reads it, and re-exported here);
`val_speakers` dev speakers become val. At this size training streams shards of the manifest
(`streaming: true` in configs/datasets/voxceleb2.yaml): each DDP rank reads its own shards.
"""

from __future__ import annotations

from data.corpus import PreparedCorpus
from data.corpus_rules import VOXCELEB2_PARTS

__all__ = ["VOXCELEB2_PARTS", "VoxCeleb2Corpus"]


class VoxCeleb2Corpus(PreparedCorpus):
    root_env = "TALKBENCH_VOXCELEB2_ROOT"
    card = "voxceleb2"

    def __init__(self, name: str = "voxceleb2", root=None, layout: str = "voxceleb2", **kwargs):
        super().__init__(name, root, layout, **kwargs)
