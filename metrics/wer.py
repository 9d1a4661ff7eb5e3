"""Lipreader WER: how many spoken words a lipreading network fails to read from the generated video.

Word level (LRW-style corpora; the synthetic corpus's key words): each clip has one target word, so there are no
insertions or deletions and WER = 1 - top-1 word accuracy (docs/metrics_reference.md). Per clip the value
is 1 (misread) or 0. Sentence level (`level="sentence"`, a model from SENTENCE_LIPREADERS plugged in): the usual
Levenshtein word error rate of the model's transcript against the clip's transcript, computed with jiwer; the
corpus value is total errors / total reference words (jiwer's corpus WER), not a mean of per-clip rates.

Mouth crops (`metrics.functional.mouth`): in this benchmark the generated clip is made for the reference clip's
audio and keeps the reference's head position (the generator contract reanimates the given pose or starts from
its identity frame), so by default the crop is placed with the reference clip's landmarks (`landmarks:
reference`: synthetic truth or prepared landmarks). `landmarks: fake` uses landmarks estimated on the generated
clip itself (EvalSample.fake_landmarks, else the shared detector of `metrics.backbones.landmarks`).

Window (`window: word`): the key word's frames +-`margin_frames` when its timing is known (synthetic truth
`word_span`), which is how the calibration's validation is measured; the whole clip otherwise, which is LRW's own
protocol (the word is centred in a 29-frame clip). Clips whose word is outside the lipreader's vocabulary, or
without landmarks, are counted as failures, never dropped.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch
from torch import nn

from metrics import weights as store
from metrics.backbones.lipreader import (
    LRW_500_WORDS,
    Lipreader,
    LipreaderConfig,
    build_lipreader,
    lipreader_from_config,
    load_lipreader_weights,
    read_lipreader_state_dict,
)
from metrics.base import ClipMetric, ClipScoreError, EvalSample
from metrics.functional.mouth import mouth_crops, pad_batch, word_frames
from metrics.functional.resize import scale_points

if TYPE_CHECKING:
    from data.corpus import LayoutCorpus
    from metrics.backbones.landmarks import LandmarkBackend

LEVELS = ("word", "sentence")
WINDOWS = ("word", "clip")
LANDMARK_SOURCES = ("reference", "fake")
CALIBRATION = "lipreader"  # benchmark.calibrate.CALIBRATORS entry that trains one on a corpus
CALIBRATED_PREFIX = "lipreader_"  # network names of calibrated lipreaders: lipreader_<preset>
# official LRW checkpoints (benchmark.weights.KNOWN names) -> the preset they load into
OFFICIAL = {"lrw_resnet18_mstcn": "lrw_resnet18_mstcn", "lrw_resnet18_mstcn_prelu": "lrw_resnet18_mstcn_prelu"}
OFFICIAL_DEFAULT = "lrw_resnet18_mstcn"  # what `evaluator: auto` falls back to without a calibration of the corpus


class SentenceLipreader(Protocol):
    """What a plugged-in sentence model provides: its crop size and a transcript per clip."""

    crop_size: int

    def transcribe(self, crops: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """(B, 1, T, crop, crop) normalised grey mouth crops, valid lengths (B,) -> B transcripts."""
        ...


#: name -> "module:factory"; the factory takes the `sentence_kwargs` of the config and returns a SentenceLipreader.
#: No sentence lipreader is bundled (none can be had offline); register yours here (or at import time of your
#: package) and set `metrics.lipreader.level=sentence metrics.lipreader.sentence_model=<name>`.
SENTENCE_LIPREADERS: dict[str, str] = {}


def _import(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _labels_digest(labels: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(labels).encode()).hexdigest()[:16]


def load_lipreader(name: str) -> tuple[Lipreader, dict[str, Any]]:
    """The lipreader registered as `name` (official LRW checkpoint or calibrated here) and its evaluator info."""
    hint = (
        f"Calibrate one with `bench calibrate --what {CALIBRATION}`, or import an official LRW checkpoint "
        "(`bench weights list` says where to get it)."
    )
    path, entry = store.resolve(name, hint)
    if entry.calibrated:
        blob, _ = store.load(name)
        net = lipreader_from_config(blob["config"])
        load_lipreader_weights(net, blob["state_dict"], source=str(path))
        status = "calibrated"
    else:
        preset = OFFICIAL.get(entry.network)
        if preset is None:
            raise store.WeightsError(f"weights {name!r} ({entry.network}) are not a lipreader")
        net = build_lipreader(preset, labels=LRW_500_WORDS)
        load_lipreader_weights(net, read_lipreader_state_dict(path), source=str(path))
        status = entry.status
    net.eval()
    info = {"weights": entry.name, "sha256": entry.sha256, "content_sha256": entry.identity, "status": status}
    return net, {**info, "source": entry.source}


def resolve_lipreader_name(evaluator: str, corpus: LayoutCorpus | None) -> str | None:
    """The registered lipreader `evaluator` stands for on `corpus`: `calibrated` = the one calibrated on this
    corpus; `auto` = that one, else the official LRW MS-TCN when registered; any other value is a registered name.
    None when the choice needs a calibration that does not exist yet. A corpus that does not speak LRW's 500 words
    (the synthetic one) chooses `calibrated` in its dataset config (configs/datasets/synthetic.yaml `metrics:`)."""
    if evaluator not in ("auto", "calibrated"):
        return evaluator
    if corpus is not None:
        entry = store.find_calibrated(corpus.fingerprint(), CALIBRATED_PREFIX)
        if entry is not None:
            return entry.name
    if evaluator == "calibrated":
        return None
    return OFFICIAL_DEFAULT if OFFICIAL_DEFAULT in store.list_weights() else None


class LipreaderWER(ClipMetric):
    """Word error rate of a lipreader on the generated clips (see module docstring).

    corpus: the corpus being scored (its clips' words, word timings and transcripts are the references, looked
    up by clip id; EvalSample.extra["word" | "word_span" | "transcript"] take precedence); evaluator: registered
    weights name, "auto" or "calibrated" (resolve_lipreader_name); network: a lipreader module to use instead
    (tests, custom models; its `evaluator_status` attribute, default "random", is recorded); level: word |
    sentence; sentence_model / sentence_kwargs: a SENTENCE_LIPREADERS entry and its arguments; window: word | clip;
    margin_frames: frames around the word; landmarks: reference | fake; landmark_backend: the
    `metrics.backbones.landmarks` backend (auto = dlib | fan | file | learned) used when the sample carries no
    landmarks; batch_size: clips per network call; calibrate: settings of `bench calibrate --what lipreader` (not
    used for scoring).
    Values per clip: (wer, ref_words); the reported `wer` is sum(wer_i * ref_words_i) / sum(ref_words_i).
    """

    outputs = ("wer", "ref_words")
    higher_is_better = False
    config_section = "lipreader"
    needs_corpus = True
    evaluator_key = "lipreader"

    def __init__(
        self,
        corpus: LayoutCorpus | None = None,
        *,
        evaluator: str = "auto",
        network: nn.Module | None = None,
        level: str = "word",
        sentence_model: str | None = None,
        sentence_kwargs: dict[str, Any] | None = None,
        window: str = "word",
        margin_frames: int = 2,
        landmarks: str = "reference",
        landmark_backend: str = "auto",
        batch_size: int = 8,
        device: str | None = None,
        calibrate: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for value, allowed, what in (
            (level, LEVELS, "level"),
            (window, WINDOWS, "window"),
            (landmarks, LANDMARK_SOURCES, "landmarks"),
        ):
            if value not in allowed:
                raise ValueError(f"lipreader {what} must be one of {allowed}, got {value!r}")
        if margin_frames < 0 or batch_size < 1:
            raise ValueError(f"margin_frames must be >= 0 and batch_size >= 1, got {margin_frames}, {batch_size}")
        self.corpus = corpus
        self.level, self.window, self.landmark_source = level, window, landmarks
        self.margin_frames, self.batch_size = int(margin_frames), int(batch_size)
        self.landmark_backend = landmark_backend
        self._backend: LandmarkBackend | None = None
        self._refs: dict[str, Any] = {}
        self.mode = level
        if level == "sentence":
            if not sentence_model:
                raise ValueError("level=sentence needs sentence_model (a metrics.wer.SENTENCE_LIPREADERS name)")
            if sentence_model not in SENTENCE_LIPREADERS:
                known = ", ".join(sorted(SENTENCE_LIPREADERS)) or "none registered"
                raise KeyError(f"unknown sentence lipreader {sentence_model!r}; registered: {known}")
            self.sentence: SentenceLipreader | None = _import(SENTENCE_LIPREADERS[sentence_model])(
                **(sentence_kwargs or {})
            )
            self.net: nn.Module | None = None
            self.crop_size = int(self.sentence.crop_size)
            info: dict[str, Any] = {"arch": f"sentence:{sentence_model}", "weights": None, "sha256": None}
            info["status"] = getattr(self.sentence, "evaluator_status", "official")
        else:
            self.sentence = None
            if network is None:
                name = resolve_lipreader_name(evaluator, corpus)
                if name is None:
                    raise store.WeightsError(
                        f"no lipreader for corpus {getattr(corpus, 'name', '?')!r}: run `bench calibrate --what "
                        f"{CALIBRATION}` (trains one on its vocabulary) or import lrw_resnet18_mstcn for LRW"
                    )
                network, info = load_lipreader(name)
            else:
                info = {
                    "weights": getattr(network, "weights_name", None),
                    "sha256": getattr(network, "weights_sha256", None),
                    "status": getattr(network, "evaluator_status", "random"),
                }
            if device is not None:
                network = network.to(device)
            network.eval().requires_grad_(False)
            self.net = network
            cfg = cast(LipreaderConfig, network.cfg)
            if not cfg.labels:
                raise ValueError("the lipreader has no labels (class names): cannot compare with words")
            self.labels = {w: i for i, w in enumerate(cfg.labels)}
            self.crop_size = int(cfg.crop_size)
            kw = {k: v for k, v in cfg.to_dict().items() if k != "labels"}
            info = {
                "arch": "lipreader",
                "kwargs": kw,
                "labels": f"{len(cfg.labels)} words sha256:{_labels_digest(cfg.labels)}",
                **info,
            }
        self.evaluator_info = {**info, "level": level, "window": window, "landmarks": landmarks}

    def train(self, mode: bool = True) -> LipreaderWER:
        # Lightning toggles train/eval on every module it owns; the lipreader's BatchNorm must stay frozen
        super().train(mode)
        if self.net is not None:
            self.net.eval()
        return self

    @classmethod
    def calibration_needed(cls, settings: dict[str, Any], corpus: LayoutCorpus) -> str | None:
        evaluator = settings.get("evaluator", "auto")
        if settings.get("level", "word") != "word" or evaluator not in ("auto", "calibrated"):
            return None
        return CALIBRATION if resolve_lipreader_name(evaluator, corpus) is None else None

    # ------------------------------------------------------------------ references

    def _reference(self, sample: EvalSample) -> dict[str, Any]:
        ref: dict[str, Any] = {k: sample.extra[k] for k in ("word", "word_span", "transcript") if k in sample.extra}
        if ("word" in ref and self.level == "word") or ("transcript" in ref and self.level == "sentence"):
            return ref
        if self.corpus is not None and sample.clip_id not in self._refs:
            for split in ("test", "val", "train"):
                try:
                    clips = self.corpus.clips(split)
                except ValueError:
                    continue
                for c in clips:
                    span = (c.truth or {}).get("word_span")
                    self._refs[c.clip_id] = {"word": c.word, "word_span": span, "transcript": c.transcript}
                if sample.clip_id in self._refs:
                    break
        found = self._refs.get(sample.clip_id, {})
        return {**{k: v for k, v in found.items() if v is not None}, **ref}

    def _landmarks(self, sample: EvalSample) -> np.ndarray:
        if self.landmark_source == "reference" and sample.real_landmarks is not None:
            # the reference's points, mapped onto the generated frame when its size differs (the crop is then
            # resized once, to the lipreader's input)
            real_hw = sample.real.shape[1:3] if sample.real is not None else sample.fake.shape[1:3]
            return scale_points(sample.real_landmarks, real_hw, sample.fake.shape[1:3])
        if sample.fake_landmarks is not None:
            return sample.fake_landmarks
        # estimate them on the generated clip with the shared backend (memoised in sample.extra for other metrics)
        from metrics.backbones import landmarks as lm

        try:
            if self._backend is None:
                self._backend = lm.build_backend(self.landmark_backend, self.corpus)
            return np.asarray(lm.sample_landmarks(sample, self._backend, "fake"))
        except lm.LandmarkError as err:
            raise ClipScoreError(f"no landmarks for the mouth crop: {err}") from err

    def _prepare(self, sample: EvalSample) -> tuple[np.ndarray, Any]:
        """(normalised crops [T, crop, crop], reference) of one clip; ClipScoreError when it cannot be scored."""
        ref = self._reference(sample)
        if self.level == "word":
            word = ref.get("word")
            if not word:
                raise ClipScoreError("the clip has no reference word (word-level WER needs an LRW-style corpus)")
            word = str(word).upper()
            if word not in self.labels:
                raise ClipScoreError(f"word {word!r} is not in the lipreader's vocabulary of {len(self.labels)}")
            target: Any = self.labels[word]
        else:
            target = ref.get("transcript")
            if not target:
                raise ClipScoreError("the clip has no reference transcript")
        video = np.asarray(sample.fake)
        if len(video) < 1:
            raise ClipScoreError("the clip has no frames")
        lm = np.asarray(self._landmarks(sample))[: len(video)]
        video = video[: len(lm)]
        try:
            crops = mouth_crops(video, lm, crop=self.crop_size)
            span = ref.get("word_span") if self.window == "word" and self.level == "word" else None
            a, b = word_frames(tuple(span) if span else None, len(crops), self.margin_frames)
        except ValueError as err:
            raise ClipScoreError(str(err)) from err
        return crops[a:b], target

    @torch.no_grad()
    def _score(self, prepared: Sequence[tuple[np.ndarray, Any]]) -> list[tuple[float, float]]:
        x, lengths = pad_batch([c for c, _ in prepared])
        if self.level == "word":
            assert self.net is not None  # a word-level WER always has its network
            dev = next(self.net.parameters()).device
            pred = self.net(x.to(dev), lengths.to(dev)).argmax(1).cpu().tolist()
            return [(float(p != t), 1.0) for p, (_, t) in zip(pred, prepared)]
        import jiwer

        assert self.sentence is not None  # level == "sentence"
        hyps = self.sentence.transcribe(x, lengths)
        out = []
        for hyp, (_, ref) in zip(hyps, prepared):
            m = jiwer.process_words(str(ref), str(hyp))
            n = m.hits + m.substitutions + m.deletions  # words in the reference
            out.append(((m.substitutions + m.deletions + m.insertions) / max(n, 1), float(n)))
        return out

    def score_clip(self, sample: EvalSample) -> tuple[float, float]:
        return self._score([self._prepare(sample)])[0]

    def update(self, samples: Sequence[EvalSample]) -> None:
        # crops per clip, then one network call per `batch_size` clips (batched across clips)
        ready: list[tuple[EvalSample, tuple[np.ndarray, Any]]] = []
        for sample in samples:
            try:
                ready.append((sample, self._prepare(sample)))
            except ClipScoreError as err:
                self.record_failure(sample.clip_id, str(err))
        for i in range(0, len(ready), self.batch_size):
            chunk = ready[i : i + self.batch_size]
            for (sample, _), vals in zip(chunk, self._score([p for _, p in chunk])):
                self.values.append(torch.tensor([list(vals)], dtype=torch.float64))
                self.index.append(torch.tensor([sample.index], dtype=torch.long))

    def compute(self) -> dict[str, torch.Tensor]:
        _, vals = self.per_clip()
        if vals.shape[0] == 0:
            nan = torch.tensor(float("nan"), dtype=torch.float64)
            return {"wer": nan, "ref_words": torch.tensor(0.0, dtype=torch.float64)}
        words = vals[:, 1].sum()
        return {"wer": (vals[:, 0] * vals[:, 1]).sum() / words.clamp(min=1), "ref_words": words}
