"""Judge health: the rules on hand-made numbers, a whole health on a few synthetic GT clips, caching, rendering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_runner import small_overrides

from benchmark import health as H
from benchmark.features import save_features
from benchmark.tables.health import (
    HEALTH_FILE,
    Check,
    Health,
    append_health_markdown,
    health_html,
    health_markdown,
    health_terminal,
    read_health,
)
from metrics.backbones.landmarks import LandmarkBackend
from metrics.base import ClipFeatures, ClipScoreError, EvalSample, SetMetric

SETTINGS = {
    "sync_tolerance": 1,
    "shifts": [3, -3],
    "shift_tolerance": 1,
    "min_in_sync": 0.9,
    "min_shift_detection": 0.9,
    "min_lipreader_accuracy": 0.5,
    "min_landmark_detection": 0.95,
    "max_landmark_error": 0.1,
}
SYNC_COLUMNS = ["av_offset", "av_conf", "lse_d", "lse_c"]


# ----------------------------------------------------------------------------------------------- rules


def test_in_sync_accuracy_counts_offsets_within_one_frame_and_failures_against_the_judge():
    check = H.in_sync_check("SyncNet", [0.0, 1.0, -1.0, 2.0, None, -4.0], 1, 0.9, SYNC_COLUMNS)
    assert check.value == pytest.approx(3 / 6)
    assert check.detail == "3/6 clips, 1 not scored" and check.status == "WARNING"
    assert H.in_sync_check("SyncNet", [0.0, 1.0, -1.0], 1, 0.9, []).status == "OK"


def test_a_shift_is_detected_when_the_offset_moves_by_it_within_one_frame():
    assert H.shift_detected(0.0, 3.0, 3, 1) and H.shift_detected(1.0, 5.0, 3, 1) and H.shift_detected(0, -2, -3, 1)
    assert not H.shift_detected(0.0, 1.0, 3, 1)  # moved, but by too little
    assert not H.shift_detected(-2.0, 3.0, 3, 1)  # moved by 5: measured from the clip's own GT offset
    assert not H.shift_detected(None, 3.0, 3, 1) and not H.shift_detected(0.0, None, 3, 1)
    trials = [(0.0, 3.0, 3), (0.0, -3.0, -3), (1.0, 4.0, 3), (0.0, 0.0, -3), (None, 3.0, 3), (0.0, 2.0, 3)]
    check = H.shift_check("SyncNet", trials, 1, 0.9, SYNC_COLUMNS)
    assert check.value == pytest.approx(4 / 6) and check.detail == "4/6 shifted clips"
    assert "-3, +3" in check.what


def test_a_judge_below_threshold_warns_naming_its_columns():
    check = H.shift_check("SyncNet", [(0.0, 3.0, 3), (0.0, 0.0, 3)], 1, 0.9, SYNC_COLUMNS)
    warning = check.warning()
    assert warning is not None
    assert warning.startswith("AV offset, AV conf., LSE-D, LSE-C: SyncNet shifted-audio detection")
    assert "50% (1/2 shifted clips)" in warning and ">= 90%" in warning
    error = Check("landmarks (learned)", "mean error", 0.05, "", 0.1, "<=", ["blinks_per_s"])
    assert error.status == "OK" and error.warning() is None
    assert Check("landmarks (learned)", "mean error", 0.2, "", 0.1, "<=", ["blinks_per_s"]).status == "WARNING"
    assert Check("SyncNet", "conf", 6.0).status == "info"


def test_lipreader_accuracy_is_one_minus_the_gt_wer_with_unread_words_as_misses():
    target = "metrics.wer:LipreaderWER"
    recs = [
        {"clip_id": "a", "raw": {target: [0.0, 1.0]}, "failed": {}},
        {"clip_id": "b", "raw": {target: [1.0, 1.0]}, "failed": {}},
        {"clip_id": "c", "raw": {target: [0.0, 1.0]}, "failed": {}},
        {"clip_id": "d", "raw": {}, "failed": {target: "word not in the vocabulary"}},
    ]
    check = H.lipreader_check(recs, target, "word", 0.5, ["wer"])
    assert check.value == pytest.approx(2 / 4) and check.detail == "2/4 words, 1 clips not read"
    assert check.status == "OK"


def test_landmark_distribution_is_median_and_iqr():
    check = H.distribution_check("SyncNet", "AV confidence", [1.0, 2.0, 3.0, 4.0, 5.0, float("nan")], [])
    assert check.value == 3.0 and check.detail.startswith("IQR 2 (2 to 4), 5 clips")


class _Toy(SetMetric):
    """A set metric whose features are given: the Fréchet distance as SetMetric computes it."""

    outputs = ("fvd_16f",)
    feature_dim = 3

    def clip_features_batch(self, videos):
        raise AssertionError("the floor uses cached features only")


def _feature_records(folder: Path, feats: dict[str, np.ndarray], speakers: dict[str, str]) -> list[dict]:
    recs = []
    for i, (cid, x) in enumerate(feats.items()):
        path = folder / "features" / "toy" / f"{cid}.npy"
        save_features(path, x)
        recs.append(
            {
                "clip_id": cid,
                "index": i,
                "speaker": speakers[cid],
                "failed": {},
                "features": {"toy": {"file": str(path.relative_to(folder)), "n": len(x)}},
            }
        )
    return recs


def test_floor_of_identical_halves_is_zero_and_halves_follow_speakers(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    feats = {"s1/a": x[:10], "s1/b": x[10:], "s2/a": x[:10], "s2/b": x[10:]}  # speaker 2 repeats speaker 1
    recs = _feature_records(tmp_path, feats, {c: c.split("/")[0] for c in feats})
    a, b, how = H.halves(recs)
    assert {r["speaker"] for r in a} == {"s1"} and {r["speaker"] for r in b} == {"s2"} and how.startswith("by speaker")
    metric = _Toy()
    metric.update([ClipFeatures(0, "x", torch.ones(5, 3), real=True)])  # a reference set the caller already added
    check = H.floor_check(metric, "toy", recs, tmp_path, ["fvd_16f"])
    assert check.value == pytest.approx(0.0, abs=1e-9) and check.status == "info"
    assert int(metric.real_features_num_samples) == 5 and int(metric.fake_features_num_samples) == 0  # untouched
    assert check.judge == "FVD_16f floor" and "2 vs 2 clips" in check.detail

    shifted = {k: v + (5.0 if k.startswith("s2") else 0.0) for k, v in feats.items()}
    recs = _feature_records(tmp_path / "b", shifted, {c: c.split("/")[0] for c in feats})
    assert H.floor_check(_Toy(), "toy", recs, tmp_path / "b", []).value == pytest.approx(75.0, rel=1e-6)

    one = _feature_records(tmp_path / "c", feats, dict.fromkeys(feats, "s"))
    a, b, how = H.halves(one)
    assert [r["clip_id"] for r in a] == ["s1/a", "s2/a"] and "alternating" in how
    few = H.floor_check(_Toy(), "toy", one[:1], tmp_path / "c", [])  # one clip: no second half
    assert few.value is None and few.detail.startswith("not computed")


# ----------------------------------------------------------------------------------------------- a whole health


class _TruthLandmarks(LandmarkBackend):
    """The GT clip's own truth landmarks (its video is the 'generated' one of the GT row)."""

    name = "truth"

    def estimate(self, video: np.ndarray) -> np.ndarray:
        raise ClipScoreError("truth landmarks come with the sample")

    def for_sample(self, sample: EvalSample, which: str) -> np.ndarray:
        if sample.real_landmarks is None:
            raise ClipScoreError("no truth landmarks")
        return np.asarray(sample.real_landmarks, np.float32)


@pytest.fixture(scope="module")
def gt_health(tmp_path_factory):
    """A GT row of 3 small synthetic clips scored by the landmark lip-sync judge (truth landmarks) and a toy set
    metric, then its health."""
    from benchmark import runner, scoring
    from benchmark.config import compose
    from benchmark.distributed import EvalGroup
    from benchmark.features import gt_dir
    from metrics.lipsync_lm import LandmarkLipSync

    runs = tmp_path_factory.mktemp("runs")
    overrides = small_overrides(runs, expert=False, **{"metrics.names": "[lsync_lm_offset,lsync_lm_corr]"})
    cfg = compose(None, "synthetic", None, overrides)
    corpus = runner.build_corpus(cfg)
    corpus.ensure()
    clips = scoring.test_clips(cfg, corpus)
    metrics = {"metrics.lipsync_lm:LandmarkLipSync": LandmarkLipSync(backend=_TruthLandmarks())}
    protocol = scoring.protocol_for(cfg, corpus, clips, metrics)  # type: ignore[arg-type]
    folder = gt_dir(cfg, protocol)
    scoring._score_row(
        cfg,
        clips,
        lambda i, c: np.asarray(c.video),
        lambda i, c: {"protocol": protocol.hash},
        metrics,  # type: ignore[arg-type]
        folder,
        lambda: scoring.run_info(cfg, "gt", "GT", "GT", scoring.now()),
        EvalGroup(),
        protocol,
        None,
    )
    health = H.ensure_health(cfg, corpus, clips, protocol, metrics, log=lambda m: None)  # type: ignore[arg-type]
    return cfg, corpus, clips, protocol, metrics, folder, health


def test_health_of_a_small_gt_row(gt_health):
    cfg, _, clips, _, _, folder, health = gt_health
    assert health is not None and health.n_clips == len(clips) == 3 and health.settings == SETTINGS
    by = {(c.judge, c.what.split(" (")[0]): c for c in health.checks}
    offsets = [r["raw"]["metrics.lipsync_lm:LandmarkLipSync"][0] for r in H.gt_records(folder).values()]
    sync = by[("landmark lip-sync", "in-sync accuracy on GT")]
    assert sync.value == pytest.approx(sum(abs(o) <= 1 for o in offsets) / 3)
    assert sync.columns == ["lsync_lm_offset", "lsync_lm_corr"]
    shifted = by[("landmark lip-sync", "shifted-audio detection")]
    assert shifted.detail.endswith("/6 shifted clips") and shifted.value is not None and shifted.value >= 5 / 6
    lm = {c.what: c for c in health.checks if c.judge == "landmarks (truth)"}
    assert lm["detection rate over GT frames"].value == 1.0
    assert lm["mean error vs truth / inter-ocular distance"].value == pytest.approx(0.0, abs=1e-6)
    assert read_health(folder) == health


def test_health_is_reused_for_the_same_protocol_and_recomputed_when_its_hash_differs(gt_health, monkeypatch):
    cfg, corpus, clips, protocol, metrics, folder, health = gt_health

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although nothing changed")

    monkeypatch.setattr(H, "judge_health", fail)
    again = H.ensure_health(cfg, corpus, clips, protocol, metrics, log=lambda m: None)
    assert again is not None and again.computed == health.computed
    monkeypatch.undo()

    data = json.loads((folder / HEALTH_FILE).read_text())
    data["protocol_hash"] = "0" * 64  # computed for another protocol: stale
    (folder / HEALTH_FILE).write_text(json.dumps(data))
    calls = []
    real = H.judge_health
    monkeypatch.setattr(H, "judge_health", lambda *a, **k: calls.append(1) or real(*a, **k))
    fresh = H.ensure_health(cfg, corpus, clips, protocol, metrics, log=lambda m: None)
    assert calls == [1] and fresh is not None and fresh.protocol_hash == protocol.hash
    assert read_health(folder).protocol_hash == protocol.hash  # type: ignore[union-attr]


def test_rendering_has_the_block_and_the_warnings(gt_health, tmp_path):
    from benchmark.tables import write_report

    _, _, _, _, _, folder, health = gt_health
    bad = Health(
        **{**health.__dict__, "checks": [*health.checks, Check("SyncNet", "in-sync", 0.5, "", 0.9, ">=", percent=True)]}
    )
    bad.checks[-1].columns = SYNC_COLUMNS
    md, html, term = health_markdown(bad), health_html(bad), health_terminal(bad)
    for text in (md, html, term):
        assert "landmark lip-sync" in text and "AV offset, AV conf., LSE-D, LSE-C: SyncNet in-sync is 50%" in text
    assert "#### Judge health" in md and "| Judge | What | Value | Threshold | Status |" in md
    assert "<h3>Judge health</h3>" in html and "WARNING" in html

    files = write_report([folder], "synthetic", tmp_path / "report_synthetic.html", grid_clips=0)
    assert "<h3>Judge health</h3>" in files.html.read_text()
    assert "#### Judge health" in files.markdown.read_text()
    board = tmp_path / "table.md"
    board.write_text("| Method |\n|---|\n")
    append_health_markdown(board, [folder, tmp_path])  # a folder without health.json adds nothing
    assert board.read_text().count("#### Judge health") == 1


def test_table1_reports_show_judge_health_and_the_warning_on_its_columns(tmp_path):
    """`bench table1` computes the health before writing the reports; the `file` landmark backend has no
    landmarks for the GT videos it is given (it reads them from the sample), so it detects nothing and its
    columns are flagged."""
    from benchmark.cli import main

    runs, reports = tmp_path / "runs", tmp_path / "reports"
    extra = {"metrics.names": "[ofm,lsync_lm_offset,lsync_lm_corr]", "metrics.lipsync_lm.landmarks": "file"}
    args = ["table1", "--dataset", "synthetic", "--models", "static", "--protocol", "standard", "--limit", "2"]
    args += ["--reports", str(reports), "--formats", "markdown,html", "--bootstrap", "0"]
    assert main([*args, *small_overrides(runs, expert=False, **extra)]) == 0
    warning = "LM-sync offset, LM-sync corr.: landmarks (file) detection rate over GT frames is 0%"
    for name in ("table1_synthetic.md", "table1_synthetic.html"):
        text = (reports / name).read_text()
        assert "Judge health" in text and warning in text, name
    (gt,) = (runs / "synthetic").glob("GT-*")
    assert read_health(gt) is not None
