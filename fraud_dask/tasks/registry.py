"""``task=registry``: list, show or promote model versions (``task.action``).

- ``task.action=list``: a table of every version of ``registry.name`` (or of every model when
  the registry has no model of that name): version, creation time, source, training period,
  training rows, test average precision and aliases;
- ``task.action=show``: a summary of ``registry.version`` (a number, ``latest`` or an alias);
- ``task.action=promote``: move ``registry.alias`` (default ``champion``) to ``registry.version``.

``registry.name`` defaults to ``fraud-<data.name>``: ``task=registry data=handbook`` lists the
handbook's models. The table and the summary are printed to the console; the returned dict
(the run's ``metrics.json``) holds the same facts.

Examples::

    python -m fraud_dask task=registry
    python -m fraud_dask task=registry task.action=show registry.version=3
    python -m fraud_dask task=registry task.action=promote registry.version=3
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fraud_dask.console import fmt, summary_rows
from fraud_dask.registry import Registry
from fraud_dask.tasks import RegistryTaskConf, task_conf, task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)

#: reads and writes a few JSON files: ``python -m fraud_dask`` starts no cluster for it
NEEDS_CLUSTER = False

ACTIONS = ("list", "show", "promote")
COLUMNS = ("version", "created", "source", "period", "rows", "AP", "aliases")
_RIGHT = {"version", "rows", "AP"}


def _action(cfg: Config) -> str:
    # a closed set (RegistryAction): another value fails when the config is composed
    return str(task_conf(cfg, RegistryTaskConf).action)


def _minute(stamp: Any) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM`` (UTC); anything else as it is."""
    if not stamp:
        return "-"
    try:
        when = dt.datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M")


def _period(training: Mapping[str, Any]) -> str:
    start, end = training.get("start"), training.get("end")
    return f"{start}..{end}" if start and end else "-"


def _count(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else "-"


def _ap(headline: Mapping[str, Any]) -> str:
    value = headline.get("average_precision")
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The cells of the version table, one dict per :meth:`Registry.list` row."""
    return [
        {
            "version": str(row["version"]),
            "created": _minute(row.get("created")),
            "source": (row.get("source") or {}).get("name") or "-",
            "period": _period(row.get("training") or {}),
            "rows": _count(row.get("rows")),
            "AP": _ap(row.get("headline") or {}),
            "aliases": ",".join(row.get("aliases") or []) or "-",
        }
        for row in rows
    ]


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :meth:`Registry.list` rows (one model): ``COLUMNS``, aligned.

    ``created`` is in UTC, to the minute; ``period`` the first and last training day;
    ``rows`` the training rows; ``AP`` the test average precision registered with the version.
    """
    cells = table_rows(rows)
    width = {c: max([len(c), *(len(r[c]) for r in cells)]) for c in COLUMNS}

    def line(values: Mapping[str, str]) -> str:
        parts = [
            values[c].rjust(width[c]) if c in _RIGHT else values[c].ljust(width[c]) for c in COLUMNS
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line({c: c for c in COLUMNS}), *(line(r) for r in cells)])


def _bundle_json(reg: Registry, folder: str, name: str) -> Any:
    """A JSON file of a bundle's folder (``config.json``, ``features.json``); None if absent."""
    import json

    path = f"{folder}/{name}"
    try:
        with reg.fs.open(path, "r") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _features_line(features: Any, columns: list[str]) -> str:
    """The feature set's name and the model's inputs (the first few named)."""
    name = features.get("name") if isinstance(features, Mapping) else None
    shown = ", ".join(columns[:6]) + (
        f", ... ({len(columns) - 6} more)" if len(columns) > 6 else ""
    )
    head = f"{name}: " if name else ""
    return f"{head}{len(columns)} inputs" + (f" ({shown})" if columns else "")


def _params_line(config: Any) -> str:
    """The model's hyper-parameters from the bundle's config (``model.params``), one line."""
    model = config.get("model") if isinstance(config, Mapping) else None
    params = model.get("params") if isinstance(model, Mapping) else None
    if not isinstance(params, Mapping) or not params:
        return "not recorded"
    return ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in params.items())


def format_version(info: Mapping[str, Any], reg: Registry | None = None) -> str:
    """A readable, aligned summary of one version (:meth:`Registry.show`'s result).

    Version and stage (its aliases), when it was created, the source and the data fingerprint,
    the training period, the model and its hyper-parameters (from the bundle's ``config.json``,
    read through ``reg`` when given), its inputs (``features.json``), the test metrics to four
    digits (with their spread across folds), the git revision and the library versions.
    """
    model = info.get("model") or {}
    training = info.get("training") or {}
    source = info.get("source") or {}
    git = info.get("git") or {}
    aliases = ", ".join(info.get("aliases") or []) or "none"
    lines = [f"{info.get('name')} version {info.get('version')} (aliases: {aliases})"]
    folder = str(info.get("path") or "")
    config = _bundle_json(reg, folder, "config.json") if reg is not None and folder else None
    features = _bundle_json(reg, folder, "features.json") if reg is not None and folder else None

    def add(label: str, text: str) -> None:
        lines.append(f"  {label:<10} {text}")

    add("path", str(info.get("path")))
    add("stage", "champion" if "champion" in (info.get("aliases") or []) else f"aliases {aliases}")
    add("created", f"{_minute(info.get('created'))} UTC")
    if source:
        add("source", f"{source.get('name')} ({source.get('path') or 'path not recorded'})")
    else:
        add("source", "not recorded")
    fingerprint = info.get("fingerprint") or {}
    if fingerprint:
        add(
            "data",
            f"{_count(fingerprint.get('rows'))} rows, {len(fingerprint.get('columns') or {})} "
            f"columns, row hash {fingerprint.get('row_hash_sum', '-')}",
        )
    if training:
        frauds = training.get("frauds")
        add(
            "trained",
            f"{_period(training)} (fold {training.get('fold', '-')}): "
            f"{_count(training.get('rows'))} rows, {_count(frauds)} frauds",
        )
    else:
        rows = fingerprint.get("rows")
        add("trained", f"period not recorded; {_count(rows)} rows")
    columns = [str(c) for c in model.get("columns") or []]
    add(
        "model",
        f"{model.get('kind', '-')} on {model.get('device', '-')}, "
        f"best iteration {model.get('best_iteration', '-')}",
    )
    if config is not None:
        add("params", _params_line(config))
    add("features", _features_line(features, columns))
    test = (info.get("metrics") or {}).get("test")
    headline = info.get("headline") or {}
    if isinstance(test, Mapping) and test:
        rows = [(k, v) for k, v in summary_rows(test) if not k.endswith(".folds")]
        add("test", ", ".join(f"{k} {v}" for k, v in rows[:6]))
    elif headline:
        add("test", ", ".join(f"{k} {fmt(v)}" for k, v in headline.items()))
    else:
        add("test", "no test metrics registered")
    if git.get("commit"):
        add("git", f"{git['commit'][:12]}{' (uncommitted changes)' if git.get('dirty') else ''}")
    libs = info.get("libraries") or {}
    shown = [f"{k} {libs[k]}" for k in ("fraud_dask", "xgboost", "dask", "pandas") if k in libs]
    if shown:
        add("libraries", ", ".join(shown))
    return "\n".join(lines)


@task_entry
def run(cfg: Config, client: Client | None) -> dict[str, Any]:
    """List, show or promote registry versions (the client is not needed and not used).

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        The composed config: ``cfg.registry`` (path, name, version, alias) and ``cfg.task.action``.
    client : distributed.Client or None
        Unused; the registry is read and written from this process.

    Returns
    -------
    dict
        ``action``, ``registry`` and ``name`` plus: ``versions`` (list rows), ``version``
        (show: the manifest with source, training, aliases and metrics) or ``promoted`` (the
        new alias record).

    Raises
    ------
    fraud_dask.registry.RegistryLookupError
        ``registry.version`` names no version or alias of the model; the message lists the
        versions and aliases there are.
    """
    action = _action(cfg)
    reg = Registry.from_conf(cfg.registry)
    name = str(cfg.registry.name)
    out: dict[str, Any] = {"action": action, "registry": reg.url, "name": name}
    if action == "list":
        names = reg.names()
        if not names:
            print(f"registry {reg.url} holds no model yet", flush=True)
            out["versions"] = []
            return out
        if name not in names:
            print(
                f"registry {reg.url} has no model {name!r}; its models: {', '.join(names)}",
                flush=True,
            )
        rows = reg.list(name if name in names else None)
        out["versions"] = rows
        for model in [name] if name in names else names:
            mine = [r for r in rows if r["name"] == model]
            print(f"\nmodel {model} in {reg.url}\n{format_table(mine)}", flush=True)
    elif action == "show":
        out["version"] = reg.show(name, str(cfg.registry.version))
        print(format_version(out["version"], reg), flush=True)
    else:
        record = reg.promote(name, str(cfg.registry.version), alias=str(cfg.registry.alias))
        out["promoted"] = record
        print(f"{name}: {record['alias']} -> version {record['version']}", flush=True)
        log.info("%s: %s -> version %d", name, record["alias"], record["version"])
    return out
