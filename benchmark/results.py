"""The typed results schema (``talkbench.results/1``) and the on-disk store.

A run directory holds ``results.json`` (one :class:`Results`) and ``samples.jsonl`` (per-clip records). Both are
written so that a crash leaves either the previous file or none (docs/runs.md): whole files go through a
temporary file in the same folder, fsync and ``os.replace``; per-clip records are appended one line at a time and
the reader drops a line cut short by a crash, so an interrupted evaluation resumes from the clips it has.

JSON has no NaN or infinity; non-finite numbers are stored as ``null`` and a metric value of ``null`` reads back
as NaN (a metric that could score no clip).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from metrics import DIRECTIONS  # the registry's: a recorded direction is one a metric can have

SCHEMA = "talkbench.results/1"
RUN_KINDS = ("model", "gt", "external", "baseline")

__all__ = [
    "DIRECTIONS",
    "RUN_KINDS",
    "SCHEMA",
    "MetricResult",
    "Protocol",
    "Results",
    "ResultsError",
    "ResultsWarning",
    "RunInfo",
    "append_jsonl",
    "environment_info",
    "find_results",
    "git_hash",
    "load_results",
    "protocol_hash",
    "read_jsonl",
    "to_jsonable",
    "utc_now",
    "write_json_atomic",
    "write_jsonl_atomic",
]


class ResultsError(ValueError):
    """A results file that cannot be read as this schema; the message names the file and the field."""


class ResultsWarning(UserWarning):
    """A results file was skipped, or a truncated record was dropped."""


# --------------------------------------------------------------------------------------------------------------
# schema


@dataclass
class MetricResult:
    """One reported value: the mean over the clips it could score (``n``), with the failures counted."""

    value: float
    n: int
    n_failed: int
    direction: str  # lower | higher | match_gt
    mode: str | None = None  # "paper" / "standard" where the metric has a reference quirk
    std: float | None = None


@dataclass
class RunInfo:
    """What produced a results file: the run, its code and environment."""

    name: str
    kind: str  # model | gt | external | baseline
    dataset: str
    model: str | None
    label: str  # what a table shows for this row
    preset: str | None
    seed: int | None
    git: str | None
    versions: dict[str, Any]
    started: str  # ISO 8601
    finished: str  # ISO 8601; the newest of several runs with one name wins in leaderboards
    config_hash: str | None = None
    checkpoint: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: evaluator family -> the network of that family the model was trained against (models.base.TalkingFaceModule
    #: .trained_against): tables mark the cells such a network's relative scored (benchmark.tables.overlap)
    trained_against: dict[str, Any] = field(default_factory=dict)


@dataclass
class Protocol:
    """The frozen evaluation settings; only results with the same ``hash`` are ranked together."""

    name: str
    hash: str
    dataset: str
    split: str
    n_clips: int
    settings: dict[str, Any]


@dataclass
class Results:
    run: RunInfo
    protocol: Protocol
    evaluators: dict[str, dict[str, Any]]  # evaluator -> {"weights": name, "sha256": ..., ...}
    metrics: dict[str, MetricResult]
    schema: str = SCHEMA
    #: the results.json it was read from (not part of the file): its folder holds the per-clip samples.jsonl
    source: Path | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "run": to_jsonable(_dataclass_dict(self.run)),
            "protocol": to_jsonable(_dataclass_dict(self.protocol)),
            "evaluators": to_jsonable(self.evaluators),
            "metrics": {name: to_jsonable(_dataclass_dict(m)) for name, m in self.metrics.items()},
        }

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike[str] | None = None) -> Results:
        """Build from ``to_dict`` output; ``source`` (the file) is named in every error."""
        where = f" in {source}" if source is not None else ""
        if not isinstance(data, Mapping):
            raise ResultsError(f"results{where} must be a JSON object, got {type(data).__name__}")
        schema = data.get("schema")
        if schema is None:
            raise ResultsError(f"results{where} have no 'schema' field (expected {SCHEMA!r})")
        if schema != SCHEMA:
            raise ResultsError(
                f"unsupported results schema {schema!r}{where}; this talkbench reads {SCHEMA!r} "
                "(re-run the evaluation, or use the talkbench version that wrote it)"
            )
        _check_keys(data, {"schema", "run", "protocol", "evaluators", "metrics"}, set(), "", where)
        run = _build(RunInfo, data["run"], "run", where)
        if run.kind not in RUN_KINDS:
            raise ResultsError(f"run.kind{where} is {run.kind!r}; expected one of {', '.join(RUN_KINDS)}")
        protocol = _build(Protocol, data["protocol"], "protocol", where)
        evaluators = data["evaluators"]
        if not isinstance(evaluators, Mapping) or not all(isinstance(v, Mapping) for v in evaluators.values()):
            raise ResultsError(f"'evaluators'{where} must map each evaluator to an object")
        raw_metrics = data["metrics"]
        if not isinstance(raw_metrics, Mapping):
            raise ResultsError(f"'metrics'{where} must be an object mapping metric names to results")
        metrics = {}
        for name, raw in raw_metrics.items():
            metric = _build(MetricResult, raw, f"metrics.{name}", where)
            if metric.direction not in DIRECTIONS:
                raise ResultsError(
                    f"metrics.{name}.direction{where} is {metric.direction!r}; expected one of {', '.join(DIRECTIONS)}"
                )
            metric.value = _read_number(metric.value, f"metrics.{name}.value", where)
            if metric.std is not None:
                metric.std = _read_number(metric.std, f"metrics.{name}.std", where)
            metrics[name] = metric
        return cls(run=run, protocol=protocol, evaluators=dict(evaluators), metrics=metrics, schema=schema)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically as JSON; returns the path."""
        return write_json_atomic(path, self.to_dict())


def load_results(path: str | os.PathLike[str]) -> Results:
    """Read one ``results.json``; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ResultsError(f"cannot read results file {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ResultsError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from err
    res = Results.from_dict(data, source=path)
    res.source = path
    # the hash is what tables group rows by: one that does not follow from the stored settings was edited
    if res.protocol.settings and protocol_hash(res.protocol.settings) != res.protocol.hash:
        raise ResultsError(
            f"{path}: protocol {res.protocol.name!r} records hash {res.protocol.hash}, but its settings hash to "
            f"{protocol_hash(res.protocol.settings)}: the file was edited; score the run again"
        )
    return res


def _dataclass_dict(obj: Any) -> dict[str, Any]:
    # dataclasses.asdict deep-copies every nested value; a shallow view is enough before to_jsonable
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _check_keys(data: Mapping[str, Any], required: set[str], optional: set[str], prefix: str, where: str) -> None:
    missing = sorted(required - data.keys())
    if missing:
        names = ", ".join(prefix + k for k in missing)
        raise ResultsError(f"results{where} are missing field(s): {names}")
    unknown = sorted(data.keys() - required - optional)
    if unknown:
        # within one schema version an unknown key means a writer/reader mismatch; silently dropping it would
        # lose data on the next save
        names = ", ".join(prefix + str(k) for k in unknown)
        raise ResultsError(f"results{where} have unknown field(s) for {SCHEMA}: {names}")


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float, type(None)),  # null stands for NaN
    "dict[str, Any]": (dict,),
    "list[str]": (list,),
    "None": (type(None),),
}


def _build(cls: type, data: Any, name: str, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ResultsError(f"'{name}'{where} must be an object, got {type(data).__name__}")
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    optional = {f.name for f in fields(cls)} - required
    _check_keys(data, required, optional, f"{name}.", where)
    for f in fields(cls):
        if f.name not in data:
            continue
        # annotations are strings here (postponed evaluation); every field uses one of the _JSON_TYPES spellings
        allowed = tuple(t for part in str(f.type).split(" | ") for t in _JSON_TYPES[part])
        value = data[f.name]
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            raise ResultsError(f"{name}.{f.name}{where} has the wrong type: {str(f.type)} expected, got {value!r}")
    return cls(**data)


def _read_number(value: Any, name: str, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsError(f"{name}{where} must be a number or null, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------------------------
# hashing and JSON conversion


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays, tuples, sets and paths converted; NaN/inf become None.

    Raises TypeError (naming the offending type) for anything else, before a byte is written.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                if isinstance(key, bool | int | float):
                    key = str(key)
                else:
                    raise TypeError(f"JSON object keys must be strings, got {type(key).__name__} ({key!r})")
            out[key] = to_jsonable(value)
        return out
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((to_jsonable(v) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, os.PathLike):
        return Path(obj).as_posix()
    if isinstance(obj, datetime):
        return obj.isoformat()
    # numpy and torch scalars/arrays, without importing either
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item())
    raise TypeError(f"cannot store a value of type {type(obj).__module__}.{type(obj).__qualname__} in JSON: {obj!r}")


def _integral_floats_as_int(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _integral_floats_as_int(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_integral_floats_as_int(v) for v in obj]
    # 25 and 25.0 are the same setting; without this a YAML "25.0" would give a different protocol
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    return obj


def protocol_hash(settings: dict[str, Any]) -> str:
    """First 12 hex digits of the sha256 of the settings as canonical JSON (sorted keys, no whitespace).

    Put everything that changes the numbers into ``settings`` (dataset, split or split-file sha, clip count,
    metric modes, crop mode, evaluator weights): results are ranked together only when this hash matches.
    """
    canonical = _integral_floats_as_int(to_jsonable(settings))
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------------------
# atomic files and JSON lines


def _dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(to_jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False)


def _fsync_dir(folder: Path) -> None:
    # the rename itself is only durable once the directory entry is flushed; not possible on Windows
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: str | os.PathLike[str], chunks: Iterable[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    # os.open with 0o666 lets the umask decide permissions, as a plain open() would (mkstemp forces 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON; a crash or a non-serialisable value leaves the old file untouched."""
    text = _dumps(obj, indent=2) + "\n"
    return _write_atomic(path, [text])


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write a text file (a leaderboard export) with the same guarantee as :func:`write_json_atomic`."""
    return _write_atomic(path, [text])


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[Any]) -> Path:
    """Write one JSON document per line; rows are streamed, and any failure leaves the old file untouched."""
    return _write_atomic(path, (_dumps(row) + "\n" for row in rows))


def append_jsonl(path: str | os.PathLike[str], row: Any, *, fsync: bool = False) -> None:
    """Append one record; a line cut short by an earlier crash is removed first so the new one stays readable.

    ``fsync=True`` also survives power loss; a killed process loses nothing already written either way.
    """
    path = Path(path)
    line = (_dumps(row) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                _drop_partial_line(handle, size)
        # one write call per record: a crash cuts at most this line
        handle.write(line)
        handle.flush()
        if fsync:
            os.fsync(handle.fileno())


def _drop_partial_line(handle: Any, size: int) -> None:
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        chunk = handle.read(end - start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            handle.truncate(start + cut + 1)
            break
        end = start
    else:
        handle.truncate(0)
    warnings.warn(f"{handle.name}: dropped a record cut short by an earlier crash", ResultsWarning, stacklevel=3)
    handle.seek(0, os.SEEK_END)


def read_jsonl(path: str | os.PathLike[str], *, missing_ok: bool = False) -> list[Any]:
    """All records of a JSON-lines file. An unreadable last line (a crash mid-write) is skipped with a warning;
    an unreadable line elsewhere is corruption and raises ResultsError naming the file and line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return []
        raise
    lines = data.split(b"\n")
    numbered = [(i + 1, raw) for i, raw in enumerate(lines) if raw.strip()]
    rows = []
    for position, (lineno, raw) in enumerate(numbered):
        try:
            rows.append(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            if position == len(numbered) - 1:
                warnings.warn(f"{path}: skipped the truncated last line {lineno} ({err})", ResultsWarning, stacklevel=2)
                break
            raise ResultsError(f"{path}: line {lineno} is not valid JSON ({err})") from err
    return rows


# --------------------------------------------------------------------------------------------------------------
# provenance


def utc_now() -> str:
    """Current time as ISO 8601 with an explicit UTC offset (what ``started``/``finished`` hold)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


_DISTRIBUTIONS = {
    "torch": ("torch",),
    "lightning": ("lightning", "pytorch-lightning"),
    "torchmetrics": ("torchmetrics",),
    "numpy": ("numpy",),
    # OpenCV ships under several distribution names with the same cv2 module
    "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"),
    "pandas": ("pandas",),
    "talkbench": ("talkbench",),
}


def _version(candidates: tuple[str, ...]) -> str | None:
    for dist in candidates:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def environment_info() -> dict[str, Any]:
    """Versions, platform, CPU count and CUDA device, as recorded in ``run.versions``.

    Package versions come from installed metadata, so this does not import torch unless it is already
    imported (the CUDA fields are then read from it; a run that uses the GPU has imported torch).
    """
    info: dict[str, Any] = {
        "python": platform.python_version(),
        **{name: _version(dists) for name, dists in _DISTRIBUTIONS.items()},
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cuda": None,
        "cuda_device": None,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            info["cuda"] = torch.version.cuda
            if torch.cuda.is_available():
                info["cuda_device"] = torch.cuda.get_device_name(torch.cuda.current_device())
                info["cuda_device_count"] = torch.cuda.device_count()
        except Exception as err:  # a broken driver must not stop a run from recording its results
            info["cuda_error"] = f"{type(err).__name__}: {err}"
    return info


def git_hash(repo_dir: str | os.PathLike[str] = ".") -> str | None:
    """``HEAD`` commit of the repository holding ``repo_dir``, with ``+dirty`` when tracked files are modified.

    None (never an exception) when git is missing, ``repo_dir`` is not in a repository, or it has no commits.
    """

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-C", os.fspath(repo_dir), *args], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    head = git("rev-parse", "--verify", "--quiet", "HEAD")
    if not head:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return f"{head}+dirty" if status else head


# --------------------------------------------------------------------------------------------------------------
# discovery


def find_results(root: str | os.PathLike[str]) -> list[tuple[Path, Results]]:
    """Every readable ``results.json`` under ``root`` (sorted by path); unreadable ones are skipped with a
    ResultsWarning naming the file and the reason.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist")
    found = []
    for path in sorted(root.rglob("results.json")):
        if not path.is_file():
            continue
        try:
            found.append((path, load_results(path)))
        except ResultsError as err:
            warnings.warn(f"skipped {path}: {err}", ResultsWarning, stacklevel=2)
    return found
