"""The metric registry is the only description of a metric: every entry is complete and agrees with its class,
and the tables package holds no per-metric table of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import metrics
from benchmark.registry import import_target
from benchmark.results import MetricResult, Protocol, Results, RunInfo
from benchmark.tables import display_name, format_value, leaderboard_frame, metric_family, render_terminal
from metrics import DIRECTIONS, METRICS, MetricSpec, families

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("key", sorted(METRICS))
def test_every_metric_is_fully_described(key: str) -> None:
    spec = METRICS[key]
    assert spec.direction in DIRECTIONS
    assert spec.label and isinstance(spec.decimals, int) and isinstance(spec.order, int)
    assert spec.description


def test_members_of_a_family_describe_it_alike() -> None:
    # fid_tf1 and fid_aa share the "fid" columns' header, position and format: they must not disagree
    for family, first in families().items():
        members = [s for k, s in METRICS.items() if (s.family or k) == family]
        for spec in members:
            fields = ("label", "decimals", "order", "direction", "signed")
            assert [getattr(spec, f) for f in fields] == [getattr(first, f) for f in fields], family


def test_published_names_are_unique() -> None:
    names = [n for spec in METRICS.values() for n in spec.published_names]
    assert len(names) == len(set(names))


def test_config_sections_exist() -> None:
    cfg = OmegaConf.load(ROOT / "configs" / "metrics" / "default.yaml")
    for key, spec in METRICS.items():
        assert spec.config_section is None or spec.config_section in cfg, key


def _expected_higher_is_better(target: str) -> bool | None:
    """torchmetrics' class-level flag holds one direction: True / False when every output of the class is
    higher- / lower-better, None when they differ (SyncNetScores: LSE-D lower, LSE-C higher) or are judged
    against the GT row (match_gt); the per-output direction is the registry's."""
    directions = {s.direction for s in METRICS.values() if s.target == target}
    if directions == {"higher"}:
        return True
    if directions == {"lower"}:
        return False
    return None


@pytest.mark.parametrize("target", sorted({s.target for s in METRICS.values()}))
def test_classes_agree_with_the_registry(target: str) -> None:
    cls = import_target(target)
    specs = [s for s in METRICS.values() if s.target == target]
    assert cls.higher_is_better == _expected_higher_is_better(target)
    assert {s.evaluator for s in specs} == {getattr(cls, "evaluator_key", None)}
    assert {s.config_section for s in specs} == {cls.config_section}


@pytest.mark.parametrize(
    ("name", "family", "header"),
    [
        ("fvd_16f", "fvd", "FVD_16f"),
        ("fvd2048_16f", "fvd", "FVD2048_16f"),
        ("fid_aa", "fid", "FID_aa"),
        ("lmd_mouth", "lmd", "LMD_mouth"),
        ("ofm@paper", "ofm", "OFM@paper"),
        ("blink_dur", "blink_dur", "Blink dur."),
        ("fidelity", None, "fidelity"),  # "fidelity" is not a variant of "fid"
        ("something_new", None, "something_new"),
    ],
)
def test_variants_resolve_to_their_family(name: str, family: str | None, header: str) -> None:
    assert metric_family(name) == family
    assert display_name(name) == header


def _literals(path: Path) -> set[str]:
    return {
        n.value
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def test_tables_hold_no_per_metric_table() -> None:
    """No string in benchmark/tables/ is a metric's key, family, label or published name: every per-metric fact
    (header, decimals, position, direction, evaluator, published header) comes from the registry."""
    named: set[str] = set()
    for key, spec in METRICS.items():
        named |= {key, spec.family or key, spec.label, *spec.published_names}
    files = sorted((ROOT / "benchmark" / "tables").glob("*.py"))
    assert len(files) >= 8
    for path in files:
        found = _literals(path) & named
        assert not found, f"{path.name} names metrics itself: {sorted(found)}"


def test_a_new_registry_entry_brings_its_column(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = MetricSpec("metrics.cpbd:CPBD", "higher", "zz_new", label="ZZ new", decimals=1, order=0, description="x")
    monkeypatch.setitem(metrics.METRICS, "zz_new", spec)
    rows = []
    for name, kind, values in (("a", "model", (0.25, 3.0)), ("b", "model", (0.75, 2.0)), ("gt", "gt", (1.0, 1.0))):
        run = RunInfo(name, kind, "lrw", None, None, None, 0, None, {}, "2025-03-01T11:00:00", "2025-03-01T12:00")
        rows.append(
            Results(
                run=run,
                protocol=Protocol("p", "abc123def456", "lrw", "test", 2, {}),
                evaluators={},
                metrics={
                    "wer": MetricResult(values[0], 2, 0, "lower"),
                    "zz_new": MetricResult(values[1], 2, 0, "higher"),
                },
            )
        )
    (table,) = leaderboard_frame(rows, "lrw")
    assert [c.header for c in table.columns] == ["ZZ new", "WER"]  # order 0: before Table 1's columns
    assert format_value("zz_new", 2.0) == "2.0"
    header = render_terminal(table).splitlines()[2]
    assert header.split()[1:] == ["ZZ", "new", "↑", "WER", "↓"]
