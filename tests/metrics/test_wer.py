"""Lipreader WER: known answers with a fixed reader, failure counting, sentence WER via jiwer, DDP parity."""

from __future__ import annotations

import sys
import types

import jiwer
import numpy as np
import pytest
import torch
from ddp_harness import compute_distributed, compute_single

from metrics.backbones.lipreader import Lipreader, build_lipreader
from metrics.base import EvalSample
from metrics.wer import SENTENCE_LIPREADERS, LipreaderWER

VOCAB = ("BADA", "GOLU", "MIPE")


class FixedReader(Lipreader):
    """Always reads class `answer`: WER is then the fraction of clips whose word is not that class."""

    def __init__(self, answer: int) -> None:
        super().__init__(build_lipreader("small", num_classes=len(VOCAB), labels=VOCAB).cfg)
        self.answer = answer

    def forward(self, x, lengths=None):
        out = torch.zeros(x.shape[0], len(VOCAB))
        out[:, self.answer] = 1.0
        return out


def face_landmarks(t: int, size: int = 64) -> np.ndarray:
    lm = np.zeros((t, 68, 2), np.float32)
    lm[:, :, :] = size / 2
    lm[:, 36] = (size * 0.3, size * 0.4)
    lm[:, 45] = (size * 0.7, size * 0.4)
    ring = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    lm[:, 48:68, 0] = size / 2 + 6 * np.cos(ring)
    lm[:, 48:68, 1] = size * 0.7 + 3 * np.sin(ring)
    return lm


def make_samples(words: list[str | None], seed: int = 0) -> list[EvalSample]:
    rng = np.random.default_rng(seed)
    out = []
    for i, word in enumerate(words):
        t = 12 + i % 5
        extra = {"word_span": [0.1, 0.3], "transcript": f"the {word or 'nothing'} now"}
        if word is not None:
            extra["word"] = word
        out.append(
            EvalSample(
                index=i,
                clip_id=f"c{i}",
                fake=rng.integers(0, 256, (t, 64, 64, 3), dtype=np.uint8),
                real_landmarks=face_landmarks(t),
                extra=extra,
            )
        )
    return out


def test_word_wer_is_one_minus_accuracy():
    words = ["BADA", "GOLU", "BADA", "MIPE", "BADA", "golu"]
    metric = LipreaderWER(network=FixedReader(answer=0), batch_size=4)
    metric.update(make_samples(words))
    # "BADA" (class 0) is read right in 3 of 6 clips; lower-case words match the upper-case vocabulary
    assert metric.compute()["wer"].item() == pytest.approx(0.5)
    _, vals = metric.per_clip()
    assert vals[:, 0].tolist() == [0, 1, 0, 1, 0, 1]
    assert metric.evaluator_info["status"] == "random" and metric.evaluator_info["arch"] == "lipreader"


def test_unscorable_clips_are_counted_not_dropped():
    samples = make_samples(["BADA", "ZEBRA", None, "GOLU"])
    samples[3].real_landmarks = None  # no landmarks, and the `file` backend cannot estimate any
    metric = LipreaderWER(network=FixedReader(answer=1), landmark_backend="file")
    metric.update(samples)
    assert int(metric.n_failed) == 3
    reasons = dict(metric.failures)
    assert "vocabulary" in reasons["c1"] and "reference word" in reasons["c2"] and "landmarks" in reasons["c3"]
    assert metric.compute()["wer"].item() == 1.0  # the one scored clip (BADA) is misread as GOLU


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="window"):
        LipreaderWER(network=FixedReader(0), window="sentence")
    with pytest.raises(KeyError, match="none registered|unknown sentence"):
        LipreaderWER(level="sentence", sentence_model="nope")


class EchoSentenceReader:
    """A plugged-in sentence model that always answers the same transcript."""

    crop_size = 32

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def transcribe(self, crops, lengths):
        assert crops.shape[-2:] == (32, 32) and crops.shape[1] == 1
        return [self.answer] * crops.shape[0]


class _SyntheticLike:
    """A corpus stub that looks synthetic to the old sniffing (`synth_config`): the choice must not depend on it."""

    name = "synthetic"
    synth_config = object()

    def fingerprint(self):
        return {"dataset": "synthetic", "clips": "stub"}


def test_lipreader_choice_is_the_configs_not_the_corpus_type(tmp_path, monkeypatch):
    """`calibrated` = the lipreader calibrated on this corpus, never LRW's; `auto` = that one, else the official LRW
    model. The synthetic corpus (its own 20 words) chooses `calibrated` in configs/datasets/synthetic.yaml."""
    from benchmark.config import compose
    from metrics import weights as store
    from metrics.wer import resolve_lipreader_name

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path))
    corpus = _SyntheticLike()
    assert resolve_lipreader_name("auto", corpus) is None and resolve_lipreader_name("calibrated", corpus) is None
    assert LipreaderWER.calibration_needed({"evaluator": "auto"}, corpus) == "lipreader"
    blob = {"x": torch.zeros(1)}
    store.register_object(blob, "lrw_resnet18_mstcn", "lrw_resnet18_mstcn", "official", False)
    assert resolve_lipreader_name("auto", corpus) == "lrw_resnet18_mstcn"
    assert resolve_lipreader_name("calibrated", corpus) is None
    assert LipreaderWER.calibration_needed({"evaluator": "auto"}, corpus) is None
    assert LipreaderWER.calibration_needed({"evaluator": "calibrated"}, corpus) == "lipreader"
    assert LipreaderWER.calibration_needed({"evaluator": "lrw_resnet18_mstcn"}, corpus) is None
    mine = store.register_object(
        blob,
        "lipreader_small-synthetic-{content8}",
        "lipreader_small",
        "calibrated",
        True,
        {"corpus": corpus.fingerprint()},
    )
    assert resolve_lipreader_name("calibrated", corpus) == resolve_lipreader_name("auto", corpus) == mine.name
    assert LipreaderWER.calibration_needed({"evaluator": "calibrated"}, corpus) is None
    assert compose(None, "synthetic").metrics.lipreader.evaluator == "calibrated"
    assert compose(None, "lrw").metrics.lipreader.evaluator == "auto"


def test_sentence_wer_is_jiwer_corpus_wer(monkeypatch):
    module = types.ModuleType("_tb_test_sentence")
    module.EchoSentenceReader = EchoSentenceReader
    monkeypatch.setitem(sys.modules, "_tb_test_sentence", module)
    monkeypatch.setitem(SENTENCE_LIPREADERS, "echo", "_tb_test_sentence:EchoSentenceReader")
    samples = make_samples(["BADA", "GOLU", "MIPE"])
    samples[1].extra["transcript"] = "a much longer reference sentence here"
    metric = LipreaderWER(level="sentence", sentence_model="echo", sentence_kwargs={"answer": "the bada now"})
    metric.update(samples)
    refs = [s.extra["transcript"] for s in samples]
    expected = jiwer.wer(refs, ["the bada now"] * 3)  # total errors / total reference words
    assert metric.compute()["wer"].item() == pytest.approx(expected)
    assert expected != pytest.approx(np.mean([jiwer.wer(r, "the bada now") for r in refs]))


def _factory():
    torch.manual_seed(0)
    net = build_lipreader("small", num_classes=len(VOCAB), labels=VOCAB)
    return {"wer": LipreaderWER(network=net, batch_size=3)}


def test_ddp_parity_one_vs_two_processes():
    samples = make_samples(["BADA", "GOLU", "MIPE", "BADA", "GOLU", "MIPE", "ZEBRA"], seed=1)
    single = compute_single(_factory, samples)
    spread = compute_distributed(_factory, samples, world_size=2)
    assert spread["wer"]["wer"] == pytest.approx(single["wer"]["wer"], abs=1e-12)
    assert spread["wer"]["ref_words"] == single["wer"]["ref_words"] == 6
