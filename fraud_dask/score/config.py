"""Schema of the ``score`` config node (batch scoring and the scoring service); no dask import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ServeConf:
    """Options of ``task=serve``, the HTTP scoring service.

    Attributes
    ----------
    host : str
        Address to bind (``127.0.0.1``: this machine only).
    port : int
        TCP port (0: any free port, printed at start).
    warm_start_days : int or None
        Days of history, before the newest row of ``data``, loaded into the per-entity state
        at start; null: the model's feature horizon (everything when a window is unbounded).
    max_body_bytes : int
        Largest accepted request body.
    lifetime_s : float
        Stop after this many seconds (0: until interrupted).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    warm_start_days: int | None = None
    max_body_bytes: int = 65536
    lifetime_s: float = 0.0


@dataclass
class ScoreConf:
    """Schema of the ``score`` config node.

    Attributes
    ----------
    start, end : str or None
        Scoring period ``[start, end)`` (ISO dates or times, UTC); null start: the data's last
        day; null end: up to the data's end.
    output : str or None
        Where ``task=score`` writes (Parquet, partitioned by day); null: ``<run_dir>/scores``.
    threshold : float
        Decision threshold: a transaction is declined (``alert``) when ``score >= threshold``.
    top_reasons : int
        Reason codes per transaction (the features that pushed the score up the most).
    exact_recency : bool
        Also read, for every entity with a time-since-previous feature, its last transaction
        before the history window, so that the feature is exact however long the gap.
    serve : ServeConf
        The scoring service.
    """

    start: str | None = None
    end: str | None = None
    output: str | None = None
    threshold: float = 0.5
    top_reasons: int = 3
    exact_recency: bool = True
    serve: ServeConf = field(default_factory=ServeConf)


def check_serve_conf(conf: Any) -> None:
    """Check ``score.serve``'s port before any cluster starts.

    Parameters
    ----------
    conf : ServeConf or DictConfig
        The ``score.serve`` node.

    Raises
    ------
    UserError
        The port is not an integer in 0-65535 (0: any free port).
    """
    from fraud_dask.errors import UserError

    port = getattr(conf, "port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(
            f"score.serve.port: got {port!r}, expected a TCP port 0-65535 (0: any free port)"
        )
