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

from omegaconf import DictConfig, OmegaConf
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


def _unknown_key_message(cfg: DictConfig, dotted: str) -> str:
    parts = dotted.split(".")
    node = cfg
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig) or part not in node:
            where = ".".join(parts[:i]) or "<top level>"
            valid = sorted(node.keys()) if isinstance(node, DictConfig) else []
            close = difflib.get_close_matches(part, [str(v) for v in valid], n=1, cutoff=0.5)
            hint = f" Did you mean {'.'.join(parts[:i] + [close[0]])!r}?" if close else ""
            return (
                f"unknown config key {dotted!r}: {where} has no {part!r} (valid: {', '.join(map(str, valid))}).{hint}"
            )
        node = node[part]
    return f"unknown config key {dotted!r}"


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. trainer.max_steps=100)")
        key, _, _ = item.partition("=")
        try:
            patch = OmegaConf.from_dotlist([item])
        except OmegaConfBaseException as err:
            raise ConfigError(f"override {item!r} cannot be parsed: {err}") from err
        try:
            cfg = OmegaConf.merge(cfg, patch)
        except ConfigKeyError:
            raise ConfigError(_unknown_key_message(cfg, key.strip())) from None
        except OmegaConfBaseException as err:
            raise ConfigError(f"override {item!r}: {err}") from err
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
