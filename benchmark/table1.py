"""`bench table1`: the Diffused Heads Table 1 comparison in one command.

Every row model is trained (or its cached weights loaded), generates the test split from each clip's first
frame and audio, and is scored beside the GT row under one protocol (configs/protocols); the table is written
as CSV, LaTeX, Markdown (and HTML where the report writer supports it). A row whose run already finished with
the same config is reused, and an interrupted run resumes from its generated clips and per-clip scores; a row
that fails is reported and the others still finish.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.config import compose, config_dir, config_hash, default_protocol
from benchmark.results import Results, load_results
from benchmark.tables.intervals import DEFAULT_BOOTSTRAP, BootstrapSettings

if TYPE_CHECKING:
    from omegaconf import DictConfig


@dataclass
class Table1Outcome:
    protocol: str
    rows: dict[str, Results] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def default_rows() -> list[str]:
    """The registered generators (config `kind: model`), in registry order: components and baselines excluded."""
    from omegaconf import DictConfig, OmegaConf

    from models import MODELS

    rows = []
    for name in MODELS:
        path = config_dir() / "models" / f"{name}.yaml"
        if not path.exists():
            continue
        model_cfg = OmegaConf.load(path)
        if isinstance(model_cfg, DictConfig) and model_cfg.get("kind") == "model":
            rows.append(name)
    return rows


def _finished(cfg: DictConfig) -> Results | None:
    from benchmark.train import run_dir_of

    path = run_dir_of(cfg) / "results.json"
    if not path.exists():
        return None
    res = load_results(path)
    return res if res.run.config_hash == config_hash(cfg) else None


def table1(
    dataset: str,
    models: Sequence[str] | None = None,
    *,
    preset: str | None = None,
    protocol: str | None = None,
    limit: int | None = None,
    overrides: Sequence[str] = (),
    reports_dir: Path = Path("reports"),
    formats: Sequence[str] = ("csv", "latex", "markdown"),
    log: Callable[[str], object] = print,
    bootstrap: BootstrapSettings | None = DEFAULT_BOOTSTRAP,
) -> Table1Outcome:
    from benchmark import runner
    from benchmark.tables import EXTENSIONS as _EXTENSIONS
    from benchmark.tables import write_leaderboard
    from benchmark.train import run_dir_of

    unknown = [f for f in formats if f != "html" and f not in _EXTENSIONS]
    if unknown:
        raise ValueError(f"unknown table formats {unknown}; choose from html, {', '.join(_EXTENSIONS)}")
    protocol = protocol or default_protocol(dataset) or "standard"
    models = list(models or default_rows())
    extra = [*overrides, *([f"run.limit={int(limit)}"] if limit is not None else [])]
    # compose every row first: a typo in --models or an override fails before hours of training
    cfgs = {m: compose(m, dataset, preset, list(extra), protocol=protocol) for m in models}
    out = Table1Outcome(protocol=protocol)
    for i, (name, cfg) in enumerate(cfgs.items(), 1):
        done = _finished(cfg)
        if done is not None:
            log(f"[table1] {i}/{len(cfgs)} {name}: finished run with the same config, reusing it")
            out.rows[name], out.reused = done, [*out.reused, name]
            continue
        log(f"[table1] {i}/{len(cfgs)} {name}")
        try:
            res = runner.run(cfg)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # one broken row must not cost the others: reported, table written without it
            out.failed[name] = f"{type(err).__name__}: {err}"
            log(f"[table1] {name} FAILED: {out.failed[name]}")
            log(traceback.format_exc(limit=-3))
            continue
        if res is not None:
            out.rows[name] = res
    if not out.rows:
        raise RuntimeError(f"bench table1: no row finished on {dataset!r}: {out.failed}")
    hashes = {r.protocol.hash for r in out.rows.values()}
    from benchmark.runner import ensure_rows_health

    ensure_rows_health(((cfgs[name], res.protocol.hash) for name, res in out.rows.items()), log)
    gts = _gt_rows(cfgs, hashes)
    results = [*out.rows.values(), *gts.values()]
    run_dirs = [run_dir_of(cfgs[name]) for name in out.rows] + list(gts)
    stem = f"table1_{dataset}"
    from benchmark.tables import write_report

    for fmt in formats:
        if fmt == "html":
            files = write_report(
                run_dirs,
                dataset,
                reports_dir / f"{stem}.html",
                reports_dir=reports_dir,
                published=_published(dataset),
                bootstrap=bootstrap,
            )
            out.files.extend(p for p in (files.html, files.markdown) if p is not None)
        elif fmt in _EXTENSIONS:
            path = reports_dir / f"{stem}.{_EXTENSIONS[fmt]}"
            # the .tex is a whole document, so it compiles as written; its table* body pastes into a paper
            standalone = fmt == "latex"
            out.files.append(
                write_leaderboard(
                    results,
                    dataset,
                    fmt,
                    path,
                    published=_published(dataset),
                    standalone=standalone,
                    bootstrap=bootstrap,
                )
            )
            if fmt == "markdown":
                from benchmark.tables.health import append_health_markdown

                append_health_markdown(out.files[-1], list(gts))
    return out


def _gt_rows(cfgs: dict[str, DictConfig], hashes: set[str]) -> dict[Path, Results]:
    """The GT results (by run folder) of the protocols the rows were scored under."""
    from benchmark.results import find_results

    cfg = next(iter(cfgs.values()))
    root = Path(cfg.run.out_dir) / cfg.dataset.name
    return {p.parent: r for p, r in find_results(root) if r.run.kind == "gt" and r.protocol.hash in hashes}


def _published(dataset: str) -> Path | None:
    """The paper's published rows for the datasets it reports (LRW, CREMA), shown beside ours."""
    path = Path(__file__).resolve().parents[1] / "reports" / "reference" / "diffused_heads_table1.csv"
    return path if dataset.lower() in ("lrw", "crema") and path.exists() else None
