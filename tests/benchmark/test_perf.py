import json

from benchmark.perf import BENCHMARKS, Figure, format_table, run_perf


def test_perf_writes_figures_with_baseline_and_machine(tmp_path, capsys):
    out = tmp_path / "perf.json"
    figures = run_perf(["corpus_decode"], out, quick=True)
    payload = json.loads(out.read_text())
    assert payload["machine"]["cpus"] >= 1 and "torch" in json.dumps(payload["machine"])
    fig, mem = payload["figures"]
    assert fig["benchmark"] == "corpus_decode" and fig["value"] > 0 and fig["baseline"] > 0
    assert fig["ratio"] == figures[0].value / figures[0].baseline
    # each benchmark runs in its own process, so its peak memory is its own
    assert mem["benchmark"] == "corpus_decode" and mem["unit"] == "MiB" and 50 < mem["value"] < 8192
    assert "corpus_decode" in capsys.readouterr().out


def test_registry_covers_every_model_corpus_and_the_metrics():
    import inspect

    from benchmark.config import load_group
    from benchmark.perf import bench_corpora
    from benchmark.registry import datasets, models

    assert {"corpus_decode", "corpora", "prepare", "sync_scoring", "metrics"} <= set(BENCHMARKS)
    trained = {n for n in models().names() if load_group("models", n).get("kind") in ("model", "component")}
    assert {"wav2lip", "wav2lip_gan", "lipgan", "diffused_heads", "vasa", "syncnet_expert", "vasa_face"} <= trained
    assert trained <= set(BENCHMARKS)
    corpora_source = inspect.getsource(bench_corpora)
    assert all(f'"{name}"' in corpora_source for name in datasets().names())


def test_model_entries_come_from_the_registry():
    from benchmark.perf import GROUPS, papers
    from benchmark.perf.generation import generators
    from benchmark.perf.models import SETTINGS, registered_kinds

    kinds = registered_kinds()
    trained = {n for n, kind in kinds.items() if kind in ("model", "component")}
    assert set(GROUPS["models"]) == trained | {"generation"}
    assert set(generators()) == {n for n, kind in kinds.items() if kind != "component"} and "static" in generators()
    # the per-model settings name registered models and benchmarks that exist
    assert set(SETTINGS) <= set(kinds)
    assert all(callable(getattr(papers, s["entry"])) for s in SETTINGS.values() if "entry" in s)


def test_table_shows_ratio():
    text = format_table([Figure("b", "fast", 10.0, "clips/s", 2.0, "slow")])
    assert "5.0x" in text and "slow" in text
