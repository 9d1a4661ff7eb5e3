"""Dataclass hyperparameter configs: strict construction from dicts / omegaconf, and named presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

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


def from_preset(cls: type[C], presets: Mapping[str, Mapping[str, Any]], name: str, **overrides: Any) -> C:
    """`cls` with the preset's values, then `overrides` (unknown keys are errors)."""
    if name not in presets:
        raise KeyError(f"{cls.__name__}: unknown preset {name!r}; known: {', '.join(presets)}")
    return to_config(cls, {**presets[name], **overrides})
