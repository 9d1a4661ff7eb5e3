"""Lazy "module:Class" registries: listing names imports nothing heavy; an entry is imported when used."""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the valid names and the closest match."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def suggest(kind: str, name: str, valid: list[str] | tuple[str, ...] | Mapping[str, Any]) -> UnknownNameError:
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


def declared_attribute(target: str, attr: str) -> Any:
    """The literal value a "package.module:Class" target's class declares for `attr` (a str, number, tuple...),
    read from the source of the class and of its bases without importing them, so listing a registry stays
    light (`bench ls models` imports no torch). Bases are followed through the module's own classes and its
    `from x import Name` imports; a KeyError when no class on the way assigns a literal to `attr`."""
    module, _, name = target.partition(":")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise KeyError(f"{target}: module {module!r} not found")
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), spec.origin)
    imported = {
        alias.asname or alias.name: f"{node.module}:{alias.name}"
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        for alias in node.names
    }
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            for stmt in node.body:
                if isinstance(stmt, ast.Assign):
                    names, value = [t.id for t in stmt.targets if isinstance(t, ast.Name)], stmt.value
                elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                    names, value = [stmt.target.id], stmt.value
                else:
                    continue
                if attr in names:
                    return ast.literal_eval(value)
            for base in node.bases:
                if not isinstance(base, ast.Name):
                    continue  # an attribute of an imported module (L.LightningModule): outside the project
                local = any(isinstance(n, ast.ClassDef) and n.name == base.id for n in tree.body)
                base_target = f"{module}:{base.id}" if local else imported.get(base.id)
                if base_target is None:
                    continue
                try:
                    return declared_attribute(base_target, attr)
                except KeyError:
                    continue
    raise KeyError(f"{target}: no class on the way declares {attr!r}")


class Registry:
    def __init__(
        self, kind: str, entries: Mapping[str, Any], target_of: Callable[[Any], str] = lambda entry: entry
    ) -> None:
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

    def declared(self, name: str, attr: str) -> Any:
        """What entry `name`'s class declares for `attr`, without importing it (`declared_attribute`)."""
        return declared_attribute(self._target_of(self.entry(name)), attr)

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
