"""Evaluation protocols: frozen descriptions of how a table's numbers are computed (configs/protocols/*.yaml).

A protocol fixes what makes numbers comparable: the test clips (split, limit), the identity-frame choice, the
metric list and every metric's mode and settings. It is an overlay on the composed config; the runner then
hashes the settings actually used (with fps, audio rate and the sha256 of every evaluator network) into the
protocol hash stored in every result, and leaderboards rank rows together only when that hash matches.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from benchmark.config import ConfigError, config_dir, group_names, load_group
from benchmark.registry import suggest

PROTOCOL_KEYS = ("description", "dataset", "run", "metrics")


def protocol_names() -> list[str]:
    return group_names("protocols")


def load_protocol(name: str) -> DictConfig:
    """The overlay of protocol `name`, checked for unknown top-level keys."""
    if name not in protocol_names():
        raise ConfigError(str(suggest("protocol", name, protocol_names())))
    proto = load_group("protocols", name)
    unknown = sorted(set(proto.keys()) - set(PROTOCOL_KEYS))
    if unknown:
        path = config_dir() / "protocols" / f"{name}.yaml"
        raise ConfigError(f"{path}: unknown keys {unknown} (a protocol has {', '.join(PROTOCOL_KEYS)})")
    return proto


def default_protocol(dataset: str) -> str | None:
    """The Table 1 protocol of a dataset (`dh_table1_<dataset>`), if there is one."""
    name = f"dh_table1_{dataset}"
    return name if name in protocol_names() else None


def protocol_overlay(name: str, dataset: str) -> DictConfig:
    """The part of protocol `name` merged into a run's config (its `run` and `metrics` sections)."""
    proto = load_protocol(name)
    if proto.get("dataset") not in (None, dataset):
        raise ConfigError(
            f"protocol {name!r} is defined for dataset {proto.dataset!r}, not {dataset!r} "
            f"(protocols for any dataset: {', '.join(n for n in protocol_names() if _any_dataset(n)) or 'none'})"
        )
    return OmegaConf.create({"run": proto.get("run") or {}, "metrics": proto.get("metrics") or {}})


def _any_dataset(name: str) -> bool:
    return load_group("protocols", name).get("dataset") is None
