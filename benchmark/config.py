"""Config composition: run defaults + model + dataset + trainer + metrics, a preset, an experiment, a protocol,
overrides.

Every group is a YAML file under configs/. The composed config is struct-locked, so a `key=value` override of
a key that does not exist is an error that lists the valid keys, never a silently ignored setting.

Evaluation protocols (configs/protocols/*.yaml) are frozen descriptions of how a table's numbers are computed:
the test clips (split, limit), the identity-frame choice, the metric list and every metric's mode and settings.
A protocol is an overlay on the composed config; the scorer then hashes the settings actually used (with fps,
audio rate and the sha256 of every evaluator network) into the protocol hash stored in every result, and
leaderboards rank rows together only when that hash matches.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from benchmark.registry import suggest
from models.common.config import config_dir as config_dir  # re-exported: where the YAML tree is


class ConfigError(ValueError):
    """A config cannot be composed: unknown group, preset, key, or a malformed override."""


def group_names(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def load_group(group: str, name: str) -> DictConfig:
    path = config_dir() / group / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(str(suggest(group.rstrip("s") + " config", name, group_names(group))))
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: not a mapping of keys to settings")
    return cfg


#: keys of earlier releases and where their settings live now (trainer keys took Lightning's names)
RENAMED = {
    "trainer.val_every_n_steps": "trainer.val_check_interval",
    "trainer.max_time_s": 'trainer.max_time (a "DD:HH:MM:SS" string)',
    "trainer.progress": "run.progress",
    "trainer.num_workers": "run.num_workers",
    "trainer.checkpoint_every_n_steps": "run.checkpoint_every_n_steps",
}


def _unknown_key_message(cfg: DictConfig, dotted: str, prefix: str = "") -> str:
    """Which part of `dotted` does not exist, what does, and the closest key (keys shown with `prefix`, the
    `<needed model>.` a user typed before an override of a model the run needs)."""
    if dotted in RENAMED:
        return f"config key {prefix + dotted!r} is now {prefix + RENAMED[dotted]}"
    parts = dotted.split(".")
    node = cfg
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig) or part not in node:
            where = prefix + ".".join(parts[:i]) if i else (prefix.rstrip(".") or "<top level>")
            valid = sorted(map(str, node.keys())) if isinstance(node, DictConfig) else []
            close = difflib.get_close_matches(part, valid, n=1, cutoff=0.5)
            hint = f" Did you mean {prefix + '.'.join(parts[:i] + [close[0]])!r}?" if close else ""
            return f"unknown config key {prefix + dotted!r}: {where} has no {part!r} (valid: {', '.join(valid)}).{hint}"
        node = node[part]
    return f"unknown config key {prefix + dotted!r}"


_ABSENT = object()


def _check_type(cfg: DictConfig, key: str, value: object, item: str) -> None:
    """A ConfigError naming the key and the type it takes when `value` cannot be what `key` holds (the current
    value's type; null keys take anything, and any key may be set to null)."""
    current = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    if current is _ABSENT or current is None or value is None:
        return
    if isinstance(current, DictConfig | dict):
        ok, expected = isinstance(value, DictConfig | dict), "a mapping"
    elif isinstance(current, Sequence) and not isinstance(current, str):  # lists, tuples (TupleConfig)
        ok, expected = isinstance(value, ListConfig | list | tuple), "a list"
    elif isinstance(current, bool):
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(current, int | float):  # an int default may still take a fraction (seconds, weights)
        ok, expected = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    else:
        ok, expected = not isinstance(value, DictConfig | ListConfig | dict | list), "a single value"
    if not ok:
        raise ConfigError(f"override {item!r}: {key} takes {expected} (its default is {current!r})")


def apply_overrides(cfg: DictConfig, overrides: list[str], prefix: str = "") -> DictConfig:
    """`cfg` with `key=value` overrides merged, each checked (the key exists, the value has its type); errors name
    the key as the user typed it (`prefix`: the `<needed model>.` before an override of a model the run needs)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {prefix + item!r} must look like key=value (e.g. trainer.max_steps=100)")
        key, _, _ = item.partition("=")
        try:
            patch = OmegaConf.from_dotlist([item])
        except OmegaConfBaseException as err:
            raise ConfigError(f"override {prefix + item!r} cannot be parsed: {err}") from err
        _check_type(cfg, key.strip(), OmegaConf.select(patch, key.strip()), prefix + item)
        try:
            merged = OmegaConf.merge(cfg, patch)
        except ConfigKeyError:
            raise ConfigError(_unknown_key_message(cfg, key.strip(), prefix)) from None
        except OmegaConfBaseException as err:
            raise ConfigError(f"override {prefix + item!r}: {err}") from err
        assert isinstance(merged, DictConfig)  # a mapping merged into a mapping
        cfg = merged
    return cfg


def _merge_struct(cfg: DictConfig, patch: DictConfig, source: str) -> DictConfig:
    try:
        merged = OmegaConf.merge(cfg, patch)
    except ConfigKeyError as err:
        raise ConfigError(f"{source}: {err.msg if hasattr(err, 'msg') else err}") from None
    assert isinstance(merged, DictConfig)  # a mapping merged into a mapping
    return merged


def compose(
    model: str | None,
    dataset: str,
    preset: str | None = None,
    overrides: list[str] | None = None,
    experiment: str | None = None,
    protocol: str | None = None,
) -> DictConfig:
    """The full, resolved config of one run (see configs/README in the YAML files for each group).

    Order: run defaults + groups, the model's preset, the experiment overlay, the evaluation protocol
    (configs/protocols), then `key=value` overrides (which, if they touch the protocol's settings, change its hash).
    """
    base = load_group(".", "run") if (config_dir() / "run.yaml").exists() else OmegaConf.create({})
    if model is None:
        # scoring videos made elsewhere: no model section to speak of
        model_cfg = OmegaConf.create({"name": None, "label": None, "kind": "external", "needs": {}, "params": {}})
        presets = OmegaConf.create({"tiny": {}, "paper": {}})
    else:
        model_cfg, presets = _model_section(model)
    dataset_cfg = load_group("datasets", dataset)
    # a corpus's own metric settings (e.g. which landmark backend or lip-sync judge its faces need): they
    # override configs/metrics/default.yaml; the corpus itself does not depend on them
    dataset_metrics = dataset_cfg.pop("metrics", None)
    cfg = OmegaConf.merge(
        base,
        {
            "model": model_cfg,
            "dataset": dataset_cfg,
            "trainer": load_group("trainer", "default"),
            "metrics": load_group("metrics", "default"),
        },
    )
    assert isinstance(cfg, DictConfig)  # a mapping merged into a mapping
    OmegaConf.set_struct(cfg, True)
    if dataset_metrics:
        cfg = _merge_struct(cfg, OmegaConf.create({"metrics": dataset_metrics}), f"configs/datasets/{dataset}.yaml")
    preset = preset or cfg.run.preset
    if preset not in presets:
        raise ConfigError(str(suggest(f"preset of model {model!r}", preset, [str(k) for k in presets.keys()])))
    overlay = presets[preset]
    # a preset's `datasets: {<dataset>: overlay}`: a paper's recipe that differs per corpus (e.g. Diffused Heads'
    # RGB motion frames on CREMA-D, grayscale on LRW)
    per_dataset = overlay.pop("datasets", None) or {}
    cfg = _merge_struct(cfg, _preset_overlay(overlay), f"configs/models/{model}.yaml preset {preset!r}")
    if cfg.dataset.name in per_dataset:
        where = f"configs/models/{model}.yaml preset {preset!r} datasets.{cfg.dataset.name}"
        cfg = _merge_struct(cfg, _preset_overlay(per_dataset[cfg.dataset.name]), where)
    cfg.run.preset = preset
    if experiment:
        cfg = _merge_struct(cfg, load_group("experiments", experiment), f"configs/experiments/{experiment}.yaml")
    if protocol:
        cfg = _merge_struct(cfg, protocol_overlay(protocol, cfg.dataset.name), f"configs/protocols/{protocol}.yaml")
        cfg.run.protocol = protocol
    # `<needed model>.key=value` overrides go to a model this one needs (e.g. syncnet_expert.trainer.max_steps=50)
    needed = set((cfg.model.get("needs") or {}).values())
    own: list[str] = []
    deps: dict[str, list[str]] = {}
    for item in overrides or []:
        if item.startswith("data."):  # `data.root=...` reads naturally; the config group is `dataset`
            item = "dataset." + item[len("data.") :]
        head = item.split(".", 1)[0]
        if head in needed and "." in item.split("=", 1)[0]:
            deps.setdefault(head, []).append(item.split(".", 1)[1])
        else:
            own.append(item)
    cfg = apply_overrides(cfg, own)
    for head, items in deps.items():
        # checked now, against the needed model's own config, so a typo fails before anything runs and the
        # message keeps the `<model>.` prefix the user typed
        apply_overrides(compose(head, dataset, preset), items, prefix=f"{head}.")
    if cfg.run.limit is not None and int(cfg.run.limit) < 1:
        raise ConfigError(f"run.limit must be >= 1 (or null: every test clip), got {cfg.run.limit}")
    cfg.run.dep_overrides = deps
    if cfg.run.name is None:
        cfg.run.name = model or "external"
    OmegaConf.resolve(cfg)
    return cfg


def _model_section(model: str) -> tuple[DictConfig, DictConfig]:
    """configs/models/<model>.yaml without its presets, its `params` the model's config dataclass (the schema:
    every hyperparameter with its type and official default), and the presets."""
    from benchmark import registry

    model_cfg = load_group("models", model)
    presets = model_cfg.pop("presets", OmegaConf.create({}))
    config_class = registry.models().get(model).config_class
    if "params" in model_cfg:
        raise ConfigError(
            f"configs/models/{model}.yaml: `params:` belongs under a preset (presets.<name>.params); the "
            f"defaults are {config_class.__module__}.{config_class.__name__}'s"
        )
    model_cfg.params = OmegaConf.structured(config_class)
    return model_cfg, presets


def _preset_overlay(preset: DictConfig) -> DictConfig:
    """A preset (or its per-dataset entry) as an overlay of the run config: its `params` go to `model.params`."""
    overlay = OmegaConf.to_container(preset)
    assert isinstance(overlay, dict)
    params = overlay.pop("params", None)
    if params:
        overlay.setdefault("model", {}).setdefault("params", {}).update(params)
    return OmegaConf.create(overlay)


def section_dict(section: DictConfig) -> dict[str, Any]:
    """A config section as a plain dict, interpolations resolved."""
    out = OmegaConf.to_container(section, resolve=True)
    assert isinstance(out, dict)  # a DictConfig gives a dict
    return cast(dict[str, Any], out)  # its keys are config keys: strings


def config_hash(cfg: DictConfig | dict[str, Any], keys: tuple[str, ...] | None = None) -> str:
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    assert isinstance(data, dict)  # a DictConfig gives a dict
    if keys:
        data = {k: data.get(k) for k in keys}
    metrics = data.get("metrics")
    if isinstance(metrics, dict) and "health" in metrics:
        # the judge-health thresholds change no scored value: a finished run stays reusable when they change
        data = {**data, "metrics": {k: v for k, v in metrics.items() if k != "health"}}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def save_config(cfg: DictConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------- protocols

PROTOCOL_KEYS = ("description", "dataset", "run", "metrics")


def protocol_names() -> list[str]:
    return group_names("protocols")


def load_protocol(name: str, dataset: str | None = None) -> DictConfig:
    """The overlay of protocol `name`, checked for unknown top-level keys. An unknown name gets a suggestion among
    the protocols that fit `dataset` (its own and those for any dataset)."""
    if name not in protocol_names():
        fitting = [n for n in protocol_names() if load_group("protocols", n).get("dataset") in (None, dataset)]
        raise ConfigError(str(suggest("protocol", name, fitting if dataset and fitting else protocol_names())))
    proto = load_group("protocols", name)
    unknown = sorted(set(map(str, proto.keys())) - set(PROTOCOL_KEYS))
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
    proto = load_protocol(name, dataset)
    if proto.get("dataset") not in (None, dataset):
        raise ConfigError(
            f"protocol {name!r} is defined for dataset {proto.dataset!r}, not {dataset!r} "
            f"(protocols for any dataset: {', '.join(n for n in protocol_names() if _any_dataset(n)) or 'none'})"
        )
    return OmegaConf.create({"run": proto.get("run") or {}, "metrics": proto.get("metrics") or {}})


def _any_dataset(name: str) -> bool:
    return load_group("protocols", name).get("dataset") is None
