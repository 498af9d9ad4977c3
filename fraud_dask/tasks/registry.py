"""``task=registry``: list, show or promote model versions (``task.action``).

- ``task.action=list``: every version of ``registry.name`` (or of every model when the name has
  none) with its aliases, creation time, git commit and headline metrics;
- ``task.action=show``: the manifest of ``registry.version`` (a number, ``latest`` or an alias);
- ``task.action=promote``: move ``registry.alias`` (default ``champion``) to ``registry.version``.

Examples::

    python -m fraud_dask task=registry
    python -m fraud_dask task=registry task.action=show registry.version=3
    python -m fraud_dask task=registry task.action=promote registry.version=3
"""

from __future__ import annotations

import logging
from typing import Any

from fraud_dask.registry import Registry

log = logging.getLogger(__name__)

ACTIONS = ("list", "show", "promote")


def _action(cfg: Any) -> str:
    action = str(getattr(cfg.task.get("action", "list"), "value", cfg.task.get("action", "list")))
    if action not in ACTIONS:
        raise ValueError(f"task=registry: task.action is {action!r}, expected one of {ACTIONS}")
    return action


def run(cfg: Any, client: Any) -> dict[str, Any]:
    """List, show or promote registry versions (the client is not needed and not used).

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        The composed config: ``cfg.registry`` (path, name, version, alias) and ``cfg.task.action``.
    client : distributed.Client or None
        Unused; the registry is read and written from this process.

    Returns
    -------
    dict
        ``action`` and ``registry`` plus: ``versions`` (list), ``version`` (show, the manifest)
        or ``promoted`` (the new alias record).
    """
    action = _action(cfg)
    reg = Registry.from_conf(cfg.registry)
    name = str(cfg.registry.name)
    out: dict[str, Any] = {"action": action, "registry": reg.url, "name": name}
    if action == "list":
        rows = reg.list(name if name in reg.names() else None)
        out["versions"] = rows
        for row in rows:
            log.info(
                "%s v%d %s aliases=%s %s",
                row["name"],
                row["version"],
                row["created"],
                ",".join(row["aliases"]) or "-",
                row["headline"],
            )
        if not rows:
            log.info("registry %s holds no model yet", reg.url)
    elif action == "show":
        out["version"] = reg.show(name, str(cfg.registry.version))
    else:
        record = reg.promote(name, str(cfg.registry.version), alias=str(cfg.registry.alias))
        out["promoted"] = record
        log.info("%s: %s -> version %d", name, record["alias"], record["version"])
    return out
