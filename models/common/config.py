"""Dataclass hyperparameter configs: strict construction from dicts / omegaconf, and named presets.

A model's config dataclass is the schema of its hyperparameters (names, types, the official values as defaults);
the values of its presets (`tiny`, `paper`) live in one place, the `presets:` of `configs/models/<name>.yaml`, which
the run composition (benchmark/config.py) and `Config.preset(name)` both read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

C = TypeVar("C")


def to_config(cls: type[C], cfg: C | Mapping[str, Any] | DictConfig | None) -> C:
    """Build a `cls` dataclass from an instance, a mapping or a DictConfig; unknown keys are errors.

    Values go through omegaconf's structured merge, so YAML lists become tuples and types are checked.
    """
    if cfg is None:
        return cls()
    if isinstance(cfg, cls):
        return cfg
    if isinstance(cfg, DictConfig):
        if OmegaConf.get_type(cfg) is cls:
            return OmegaConf.to_object(cfg)  # type: ignore[return-value]
        cfg = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    if not isinstance(cfg, Mapping):
        raise TypeError(f"{cls.__name__}: expected a mapping or {cls.__name__}, got {type(cfg).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; known keys: {', '.join(known)}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), dict(cfg)))  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise ValueError(f"{cls.__name__}: {err}") from err


def config_dir() -> Path:
    """The YAML config tree: $TALKBENCH_CONFIGS, else the repository's configs/."""
    return Path(os.environ.get("TALKBENCH_CONFIGS", Path(__file__).resolve().parents[2] / "configs"))


@lru_cache(maxsize=64)
def _model_presets(path: Path, mtime_ns: int) -> dict[str, Any]:
    doc = OmegaConf.load(path)
    if not isinstance(doc, DictConfig):
        raise ValueError(f"{path}: expected a mapping (with `presets:`), got a list")
    raw = OmegaConf.to_container(doc.get("presets") or {}, resolve=True)
    assert isinstance(raw, dict)
    return cast(dict[str, Any], raw)  # YAML mapping keys: strings


def model_presets(model: str) -> dict[str, Any]:
    """The `presets:` section of configs/models/<model>.yaml as plain data (preset name -> overlay)."""
    path = config_dir() / "models" / f"{model}.yaml"
    if not path.exists():
        raise KeyError(f"no model config {path}")
    return _model_presets(path, path.stat().st_mtime_ns)


def preset_params(model: str, preset: str, dataset: str | None = None) -> dict[str, Any]:
    """The hyperparameters preset `preset` of configs/models/<model>.yaml sets (its `params:`, then those of its
    `datasets: {<dataset>: {params: ...}}` entry); what it leaves out keeps the config dataclass's default."""
    presets = model_presets(model)
    if preset not in presets:
        raise KeyError(f"{model}: unknown preset {preset!r}; known: {', '.join(presets)}")
    overlay = presets[preset] or {}
    params = dict(overlay.get("params") or {})
    if dataset is not None:
        params.update(((overlay.get("datasets") or {}).get(dataset) or {}).get("params") or {})
    return params


class Presets:
    """Mixin of a config dataclass whose presets are those of configs/models/<preset_source>.yaml."""

    preset_source: ClassVar[str]
    # Settings only generate() reads (a sampler and its steps, guidance scales, batch sizes): they change the clips,
    # never the weights, so the training hash (benchmark/train.py) counts them at their schema defaults and a
    # trained run is reused, not retrained from scratch, when only they change.
    generation_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def generation_defaults(cls) -> dict[str, Any]:
        """The schema defaults of `generation_fields`."""
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        out: dict[str, Any] = {}
        for name in cls.generation_fields:
            f = fields[name]
            out[name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        return out

    @classmethod
    def preset(cls: type[P], name: str, *, dataset: str | None = None, **overrides: Any) -> P:
        """The config of preset `name` (on `dataset`, where the preset differs per corpus), then `overrides`
        (unknown keys are errors)."""
        return to_config(cls, {**preset_params(cls.preset_source, name, dataset), **overrides})

    @classmethod
    def preset_names(cls) -> list[str]:
        return list(model_presets(cls.preset_source))


P = TypeVar("P", bound=Presets)
