"""Lazy "module:Class" registries: listing names imports nothing heavy; an entry is imported when used."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the valid names and the closest match."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def suggest(kind: str, name: str, valid: list[str] | tuple[str, ...] | Mapping) -> UnknownNameError:
    names = sorted(valid)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}. Valid {kind}s: {', '.join(names)}.{hint}")


def import_target(target: str) -> Any:
    """Import "package.module:Attr" and return the attribute."""
    module, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"registry target {target!r} must look like 'package.module:Name'")
    return getattr(importlib.import_module(module), attr)


class Registry:
    def __init__(self, kind: str, entries: Mapping[str, Any], target_of=lambda entry: entry):
        self.kind = kind
        self._entries = entries
        self._target_of = target_of

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> Any:
        if name not in self._entries:
            raise suggest(self.kind, name, self._entries)
        return self._entries[name]

    def get(self, name: str) -> Any:
        return import_target(self._target_of(self.entry(name)))

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def models() -> Registry:
    from models import MODELS

    return Registry("model", MODELS)


def datasets() -> Registry:
    from data import DATASETS

    return Registry("dataset", DATASETS)


def metrics() -> Registry:
    from metrics import METRICS

    return Registry("metric", METRICS, target_of=lambda spec: spec.target)
