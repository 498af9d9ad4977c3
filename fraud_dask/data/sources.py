"""Schema of a transaction source: where it is, how its columns map, how to parse it.

:class:`SourceConf` holds every field of the ``data`` config group that reading needs;
``fraud_dask.data.config.DataConf`` extends it with the synthetic generator's options. The
reader accepts either (or a plain mapping) through :func:`as_source_conf`, so it works the same
from Hydra, a notebook or a test.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from fraud_dask.errors import UserError


class DataFormat(enum.StrEnum):
    """File format of a source; CSV is read and converted to the canonical frame."""

    parquet = "parquet"
    csv = "csv"


class PanAction(enum.StrEnum):
    """What to do with card numbers found in a string column not named as holding them.

    Every string column is scanned; ``card_id`` and ``data.pii_columns`` are expected to hold
    card numbers and are always tokenized. In any other column, ``tokenize`` replaces them too;
    ``refuse`` stops the run with an error naming the file and the column (so that the column
    can be listed in ``pii_columns`` or left out of the mapping). No setting writes them raw.
    """

    tokenize = "tokenize"
    refuse = "refuse"


class TzPolicy(enum.StrEnum):
    """What string timestamps carry: ``naive`` (no UTC offset), ``aware`` (an offset), ``any``.

    A string value that does not follow the policy is quarantined as ``mixed_timezone``; with
    ``any`` naive values are read in ``timestamp.timezone`` and offsets are honoured.
    """

    naive = "naive"
    aware = "aware"
    any = "any"


@dataclass
class TimestampConf:
    """How to parse the raw ``ts`` (and ``label_ts``) column."""

    format: str | None = None
    """strptime format of string timestamps; None reads ISO 8601."""
    unit: str | None = None
    """Epoch unit (s, ms, us, ns) of numeric timestamps; required when they are numbers."""
    timezone: str = "UTC"
    """IANA zone of naive timestamps (Spark INT96 values are UTC)."""
    offsets: TzPolicy = TzPolicy.naive
    valid_from: str = "2000-01-01"
    """Earlier timestamps are quarantined as out of range."""
    valid_until: str | None = None
    """Later timestamps are quarantined as out of range; None: one day after the load."""


@dataclass
class PanConf:
    """Key of the HMAC that replaces card numbers (PANs); never logged."""

    key: str | None = None
    """The key itself; prefer ``key_env`` (a config value is saved with the run)."""
    key_env: str = "FRAUD_DASK_PAN_KEY"
    """Environment variable holding the key, read on the client when ``key`` is null."""
    key_file: str | None = None
    """A file holding the key (its first line), read when neither ``key`` nor ``key_env`` give
    one; None: the data home's ``pan.key`` (``$FRAUD_DASK_HOME``, default
    ``~/.local/share/fraud_dask``), created with a random key (mode 0600) when ``create_key``."""
    create_key: bool = True
    """Create the data home's ``pan.key`` when no key is given anywhere; false: a source holding
    card numbers without a key is an error."""
    unlisted: PanAction = PanAction.tokenize
    """Card numbers found in a string column other than ``card_id`` and ``pii_columns``:
    ``tokenize`` (default) or ``refuse`` (an error naming the file and the column)."""


@dataclass
class SourceConf:
    """A transaction source (the reading part of the ``data`` config group)."""

    name: str = MISSING
    path: str = MISSING
    """fsspec URL of a file, a folder of files (hive folders allowed) or a glob."""
    format: DataFormat = DataFormat.parquet
    columns: dict[str, str] = field(default_factory=dict)
    """Raw name -> canonical name. Empty: the raw names are already canonical."""
    keep_unmapped: bool = False
    """With a non-empty mapping, also keep raw columns it does not name (under their names)."""
    timestamp: TimestampConf = field(default_factory=TimestampConf)
    pii_columns: list[str] = field(default_factory=list)
    """Columns (raw or canonical names) that may hold personal data; PANs in them are hashed."""
    pan: PanConf = field(default_factory=PanConf)
    label_delay_days: float = 7.0
    """``label_ts`` defaults to ``ts`` + this many days where the source has none."""
    client_id: str = "default"
    """``client_id`` of rows whose source has none."""
    partition_column: str = "day"
    """Hive partition key holding the UTC date (YYYY-MM-DD); used to skip folders by date."""
    storage_options: dict[str, Any] = field(default_factory=dict)
    csv_options: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for ``pandas.read_csv`` (e.g. ``sep``)."""
    start: str | None = None
    """Only rows with ``ts`` >= start (inclusive)."""
    end: str | None = None
    """Only rows with ``ts`` < end (exclusive)."""
    dedupe: bool = True
    """Quarantine repeated ``tx_id`` (the first valid occurrence, in file then row order, is
    kept) in every read of the source. It costs one extra pass over the rows read (``tx_id``
    only, plus a shuffle of the repeated ones); turn it off only for a source known to be clean.
    """
    quarantine_path: str | None = None
    """Where ingest writes the quarantine dataset; None: ``<run_dir>/quarantine``."""
    max_value_length: int = 1024
    """A string value (an id, free text, a timestamp or amount written as text) longer than this
    many characters sends its row to quarantine as ``oversized_value``."""
    rows_per_partition: int | None = 500_000
    """Consecutive small Parquet files are read together into partitions of about this many
    rows (by their footers; a larger file stays one partition). None: one partition per file.
    Fewer, larger partitions cut the per-task overhead of every later stage (shuffles above all).
    """


SOURCE_FIELDS = tuple(f.name for f in dataclasses.fields(SourceConf))


def as_source_conf(cfg: Any) -> SourceConf:
    """Validate a source config and fill in the defaults.

    Parameters
    ----------
    cfg : SourceConf, DataConf, DictConfig or mapping
        The ``data`` config (extra keys such as ``synthetic`` are ignored).

    Returns
    -------
    SourceConf
        A typed copy with interpolations resolved.

    Raises
    ------
    ValueError
        A required field (``path``, ``name``) is missing or a value has the wrong type.
    """
    if isinstance(cfg, SourceConf) and type(cfg) is SourceConf:
        node = OmegaConf.structured(cfg)
    else:
        if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
            cfg = OmegaConf.structured(cfg)
        if not isinstance(cfg, DictConfig | dict):
            raise ValueError(f"data config: expected a mapping, got {type(cfg).__name__}")
        # Pick the reading fields one by one: other groups' fields (``synthetic``) may hold
        # interpolations that only resolve in their own context.
        values = {}
        for key in SOURCE_FIELDS:
            if key in cfg and not (isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, key)):
                value = cfg[key]
                if isinstance(value, DictConfig | ListConfig):
                    value = OmegaConf.to_container(value, resolve=True)
                values[key] = value
        try:
            node = OmegaConf.merge(OmegaConf.structured(SourceConf), values)
        except Exception as exc:  # omegaconf raises several types; re-raise one clear one
            raise UserError(f"data config: {exc}") from exc
    for required in ("name", "path"):
        if OmegaConf.is_missing(node, required):
            raise UserError(f"data config: 'data.{required}' is required but not set")
    conf = OmegaConf.to_object(node)
    assert isinstance(conf, SourceConf)
    canonical = set(conf.columns.values())
    if len(canonical) != len(conf.columns):
        raise UserError(f"data.columns maps two raw columns to one name: {conf.columns}")
    check_values(conf)
    return conf


_UNITS = ("s", "ms", "us", "ns")


def check_values(conf: SourceConf) -> None:
    """Check the source's values that can be known before anything is read.

    Parameters
    ----------
    conf : SourceConf or DictConfig
        The ``data`` config; fields left missing (``???``) are not checked.

    Raises
    ------
    UserError
        A value out of range, a time zone or date that does not parse, a key file that does
        not exist (the field, the value and what is expected are named).
    """
    import pandas as pd

    def get(name: str) -> Any:
        node: Any = conf
        for part in name.split("."):
            if isinstance(node, DictConfig) and OmegaConf.is_missing(node, part):
                return None
            node = getattr(node, part, None)
        return node

    def bad(name: str, got: Any, expected: str) -> UserError:
        return UserError(f"data.{name}: got {got!r}, expected {expected}")

    path = get("path")
    if path is not None and not str(path).strip():
        raise bad("path", path, "a file, folder or URL")
    length = get("max_value_length")
    if length is not None and length < 1:
        raise bad("max_value_length", length, "a positive number of characters")
    rows = get("rows_per_partition")
    if rows is not None and rows < 1:
        raise bad("rows_per_partition", rows, "a positive number of rows or null")
    delay = get("label_delay_days")
    if delay is not None and not 0 <= delay < 36_500:
        raise bad("label_delay_days", delay, "a number of days >= 0")
    unit = get("timestamp.unit")
    if unit is not None and unit not in _UNITS:
        raise bad("timestamp.unit", unit, f"one of {', '.join(_UNITS)} or null")
    zone = get("timestamp.timezone")
    if zone is not None:
        try:
            pd.Timestamp("2000-01-01").tz_localize(str(zone))
        except (TypeError, ValueError, KeyError) as exc:  # pytz and zoneinfo raise differently
            raise bad("timestamp.timezone", zone, "an IANA time zone such as UTC") from exc
    bounds = {}
    for name in ("timestamp.valid_from", "timestamp.valid_until", "start", "end"):
        value = get(name)
        if value is None:
            continue
        try:
            bounds[name] = pd.Timestamp(str(value))
        except (TypeError, ValueError) as exc:
            raise bad(name, value, "an ISO date or time such as 2025-01-01") from exc
        if bounds[name] is pd.NaT:
            raise bad(name, value, "an ISO date or time such as 2025-01-01")
    for low, high in (("timestamp.valid_from", "timestamp.valid_until"), ("start", "end")):
        if low in bounds and high in bounds:
            a, b = (
                bounds[k].tz_localize(None)
                if bounds[k].tzinfo is None
                else bounds[k].tz_convert("UTC").tz_localize(None)
                for k in (low, high)
            )
            if a >= b:
                raise bad(high, get(high), f"a time after data.{low} ({get(low)})")
    key_file = get("pan.key_file")
    key_env = get("pan.key_env")
    has_key = bool(get("pan.key")) or bool(key_env and os.environ.get(str(key_env)))
    if key_file and not has_key and not os.path.isfile(os.path.expanduser(str(key_file))):
        raise bad("pan.key_file", key_file, "an existing file holding the key")
