"""The procedural talking-face corpus (docs/synthetic_corpus.md): the embedded default dataset and the metrics' truth.

    spec = make_corpus_spec(SyntheticConfig(n_clips=12))   # speakers, vocabulary, words and timing (cheap)
    clip = render_clip(spec, 0)                            # data.clip.Clip with truth, ~20 ms per 2 s clip
    write_corpus(cfg, out_dir, "lrw")                      # real containers + truth sidecars (writer.py)

Names are resolved lazily so `import data.synthetic` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SyntheticConfig": "generator",
    "CorpusSpec": "generator",
    "ClipSpec": "generator",
    "DifficultyParams": "generator",
    "DIFFICULTY": "generator",
    "DIFFICULTIES": "generator",
    "GENERATOR_VERSION": "generator",
    "make_corpus_spec": "generator",
    "render_clip": "generator",
    "iter_clips": "generator",
    "Speaker": "speakers",
    "make_speakers": "speakers",
    "make_vocabulary": "speech",
    "eye_aspect_ratio": "face",
    "render_video": "face",
    "shift_audio": "perturb",
    "freeze_video": "perturb",
    "drop_frames": "perturb",
    "duplicate_frames": "perturb",
    "remove_blinks": "perturb",
    "jitter": "perturb",
    "write_corpus": "writer",
    "synth_main": "writer",
    "read_truth": "writer",
    "write_truth": "writer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'data.synthetic' has no attribute {name!r}")
    return getattr(importlib.import_module(f"data.synthetic.{module}"), name)
