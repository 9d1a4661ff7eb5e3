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
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from benchmark.registry import suggest


class ConfigError(ValueError):
    """A config cannot be composed: unknown group, preset, key, or a malformed override."""


def config_dir() -> Path:
    return Path(os.environ.get("TALKBENCH_CONFIGS", Path(__file__).resolve().parents[1] / "configs"))


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
    return cfg


def _unknown_key_message(cfg: DictConfig, dotted: str, prefix: str = "") -> str:
    """Which part of `dotted` does not exist, what does, and the closest key (keys shown with `prefix`, the
    `<needed model>.` a user typed before an override of a model the run needs)."""
    parts = dotted.split(".")
    node = cfg
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig) or part not in node:
            where = prefix + ".".join(parts[:i]) if i else (prefix.rstrip(".") or "<top level>")
            valid = sorted(node.keys()) if isinstance(node, DictConfig) else []
            close = difflib.get_close_matches(part, [str(v) for v in valid], n=1, cutoff=0.5)
            hint = f" Did you mean {prefix + '.'.join(parts[:i] + [close[0]])!r}?" if close else ""
            return (
                f"unknown config key {prefix + dotted!r}: {where} has no {part!r} "
                f"(valid: {', '.join(map(str, valid))}).{hint}"
            )
        node = node[part]
    return f"unknown config key {prefix + dotted!r}"


_ABSENT = object()


def _check_type(cfg: DictConfig, key: str, value, item: str) -> None:
    """A ConfigError naming the key and the type it takes when `value` cannot be what `key` holds (the current
    value's type; null keys take anything, and any key may be set to null)."""
    current = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    if current is _ABSENT or current is None or value is None:
        return
    if isinstance(current, DictConfig | dict):
        ok, expected = isinstance(value, DictConfig | dict), "a mapping"
    elif isinstance(current, ListConfig | list | tuple):
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
            cfg = OmegaConf.merge(cfg, patch)
        except ConfigKeyError:
            raise ConfigError(_unknown_key_message(cfg, key.strip(), prefix)) from None
        except OmegaConfBaseException as err:
            raise ConfigError(f"override {prefix + item!r}: {err}") from err
    return cfg


def _merge_struct(cfg: DictConfig, patch: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, patch)
    except ConfigKeyError as err:
        raise ConfigError(f"{source}: {err.msg if hasattr(err, 'msg') else err}") from None


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
        model_cfg = load_group("models", model)
        presets = model_cfg.pop("presets", OmegaConf.create({}))
    cfg = OmegaConf.merge(
        base,
        {
            "model": model_cfg,
            "dataset": load_group("datasets", dataset),
            "trainer": load_group("trainer", "default"),
            "metrics": load_group("metrics", "default"),
        },
    )
    OmegaConf.set_struct(cfg, True)
    preset = preset or cfg.run.preset
    if preset not in presets:
        raise ConfigError(str(suggest(f"preset of model {model!r}", preset, list(presets.keys()))))
    overlay = presets[preset]
    # a preset's `datasets: {<dataset>: overlay}`: a paper's recipe that differs per corpus (e.g. Diffused Heads'
    # RGB motion frames on CREMA-D, grayscale on LRW)
    per_dataset = overlay.pop("datasets", None) or {}
    cfg = _merge_struct(cfg, overlay, f"configs/models/{model}.yaml preset {preset!r}")
    if cfg.dataset.name in per_dataset:
        where = f"configs/models/{model}.yaml preset {preset!r} datasets.{cfg.dataset.name}"
        cfg = _merge_struct(cfg, per_dataset[cfg.dataset.name], where)
    cfg.run.preset = preset
    if experiment:
        cfg = _merge_struct(cfg, load_group("experiments", experiment), f"configs/experiments/{experiment}.yaml")
    if protocol:
        cfg = _merge_struct(cfg, protocol_overlay(protocol, cfg.dataset.name), f"configs/protocols/{protocol}.yaml")
        cfg.run.protocol = protocol
    # `<needed model>.key=value` overrides go to a model this one needs (e.g. syncnet_expert.trainer.max_steps=50)
    needed = set((cfg.model.get("needs") or {}).values())
    own, deps = [], {}
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


def config_hash(cfg: DictConfig | dict, keys: tuple[str, ...] | None = None) -> str:
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    if keys:
        data = {k: data.get(k) for k in keys}
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
    proto = load_protocol(name, dataset)
    if proto.get("dataset") not in (None, dataset):
        raise ConfigError(
            f"protocol {name!r} is defined for dataset {proto.dataset!r}, not {dataset!r} "
            f"(protocols for any dataset: {', '.join(n for n in protocol_names() if _any_dataset(n)) or 'none'})"
        )
    return OmegaConf.create({"run": proto.get("run") or {}, "metrics": proto.get("metrics") or {}})


def _any_dataset(name: str) -> bool:
    return load_group("protocols", name).get("dataset") is None
