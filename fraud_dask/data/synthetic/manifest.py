"""The generator's record next to the data it wrote: the options that made ``data.path``'s rows.

:func:`~fraud_dask.data.synthetic.write.write_synthetic` writes ``_generator.json`` into the
dataset's folder (Parquet readers skip ``_*`` entries): every option of ``data.synthetic`` that
changes the rows, and their hash. A run that would read the synthetic data at ``data.path``
compares the options it was given with the record (:func:`check_reuse`): the same options reuse
the data; other options are one clear error naming ``data.path`` and the options that differ,
never a silent reuse of data generated otherwise. Every field of the generator's schema is
hashed, so an option added to the generator is covered without a change here; only
:data:`NOT_DATA` (options documented not to change the rows) are left out.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from fraud_dask.errors import UserError

log = logging.getLogger(__name__)

#: the record's file name inside the dataset's folder
MANIFEST = "_generator.json"
#: generator options that never change the rows (partitioning only)
NOT_DATA = frozenset({"rows_per_partition"})


def generator_options(conf: Any) -> dict[str, Any]:
    """The options of ``data.synthetic`` that make the rows, as plain JSON values.

    Parameters
    ----------
    conf : SyntheticConf, DictConfig or mapping
        The ``data.synthetic`` node.
    """
    if dataclasses.is_dataclass(conf) and not isinstance(conf, type):
        plain: Any = dataclasses.asdict(conf)
    elif isinstance(conf, Mapping):
        from omegaconf import OmegaConf

        plain = (
            OmegaConf.to_container(conf, resolve=True, enum_to_str=True)
            if OmegaConf.is_config(conf)
            else dict(conf)
        )
    else:
        raise TypeError(f"data.synthetic: expected a config node, got {type(conf).__name__}")

    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, enum.Enum):
            return value.value
        return value

    return {k: v for k, v in clean(plain).items() if k not in NOT_DATA}


def options_hash(options: Mapping[str, Any]) -> str:
    """A short, stable hash of generator options (sorted JSON, sha256)."""
    text = json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _manifest_path(path: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    from fraud_dask.data.io import filesystem

    fs, root = filesystem(str(path), dict(storage_options or {}) or None)
    return fs, f"{root.rstrip('/')}/{MANIFEST}"


def write_manifest(path: str, conf: Any, storage_options: Mapping[str, Any] | None = None) -> str:
    """Record the options ``conf`` in the dataset at ``path``; returns the options' hash."""
    options = generator_options(conf)
    digest = options_hash(options)
    fs, where = _manifest_path(path, storage_options)
    body = {"generator": "fraud_dask.data.synthetic", "hash": digest, "options": options}
    with fs.open(where, "w") as handle:
        handle.write(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    return digest


def read_manifest(path: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record of the dataset at ``path``: ``{}`` when there is none (not generated here, or
    generated before records were kept)."""
    fs, where = _manifest_path(path, storage_options)
    try:
        with fs.open(where, "r") as handle:
            found = json.load(handle)
    except (FileNotFoundError, OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def differences(recorded: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = "") -> list:
    """``key: recorded -> wanted`` for each option that differs (nested keys dotted)."""
    out = []
    for key in sorted(set(recorded) | set(wanted)):
        old, new = recorded.get(key), wanted.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out.extend(differences(old, new, f"{prefix}{key}."))
        elif old != new:
            out.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return out


def has_data(path: str, storage_options: Mapping[str, Any] | None) -> bool:
    from fraud_dask.data.io import list_files

    try:
        list_files(str(path), "parquet", dict(storage_options or {}) or None)
    except (FileNotFoundError, ValueError):
        return False
    return True


def check_reuse(data: Any) -> str:
    """Whether the synthetic data at ``data.path`` was generated with ``data.synthetic``.

    Returns
    -------
    str
        ``"missing"`` (no data there yet), ``"same"`` (the record matches) or ``"unrecorded"``
        (data without a record: generated before records were kept, or not by fraud_dask; a
        warning in the log, the data is used as it is).

    Raises
    ------
    UserError
        The record names other options: one line with ``data.path``, what differs, and the two
        ways out (``task=generate`` to replace it, or another ``data.path``).
    """
    path = str(data.path)
    options = data.storage_options
    try:
        if not has_data(path, options):
            return "missing"
    except OSError as exc:  # unreachable or forbidden: the task's own read says so
        log.warning("data.path=%s: cannot check its generator record (%s)", path, exc)
        return "unrecorded"
    recorded = read_manifest(path, options)
    if not recorded:
        log.warning(
            "data.path=%s holds data without a generator record (%s): the data.synthetic options "
            "it was made with cannot be checked; task=generate rewrites it with one",
            path,
            MANIFEST,
        )
        return "unrecorded"
    wanted = generator_options(data.synthetic)
    if recorded.get("hash") == options_hash(wanted):
        return "same"
    changed = differences(recorded.get("options") or {}, wanted)
    shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
    raise UserError(
        f"data.path={path} holds synthetic data generated with other data.synthetic options "
        f"({shown or 'options of another version'}): run task=generate with these options "
        f"to replace it, or give this dataset its own folder with data.path=..."
    )
