"""CREMA-D: 91 actors, `VideoFlash/AAAA_SSS_EEE_LL.flv` (480x360, 30 fps) + `AudioWAV/AAAA_SSS_EEE_LL.wav`.

Layout: `data.layouts.CremaLayout`; preparation decodes the flv to 25 fps and takes the audio from the wav.
Splits (docs/corpora.md): Diffused Heads' test actors (`CREMA_DH_TEST_ACTORS`, 820 clips) are test, the other
actors train; CREMA-D has no official val split, so `val_speakers` train actors (chosen by a hash of the actor
id) become val. The file naming parts and the test actors are defined in `data.corpus_rules` (the layout reads
them there; defined here they would close an import circle through data.corpus) and re-exported here.
"""

from __future__ import annotations

from data.corpus import PreparedCorpus
from data.corpus_rules import CREMA_DH_TEST_ACTORS, CREMA_EMOTIONS, CREMA_LEVELS, CREMA_SENTENCES

__all__ = ["CREMA_DH_TEST_ACTORS", "CREMA_EMOTIONS", "CREMA_LEVELS", "CREMA_SENTENCES", "DH_TEST_CLIPS", "CremaCorpus"]

DH_TEST_CLIPS = 820  # diffused-heads train branch, datasets/ test list


class CremaCorpus(PreparedCorpus):
    root_env = "TALKBENCH_CREMA_ROOT"
    card = "crema"
    test_actors = CREMA_DH_TEST_ACTORS

    def __init__(self, name: str = "crema", root=None, layout: str = "crema", **kwargs):
        super().__init__(name, root, layout, **kwargs)
