"""Schema of the ``score`` config node (batch scoring and the scoring service); no dask import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fraud_dask.score.arms import ArmsConf


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
    max_future_s : float or None
        Reject (422) an event whose ``ts``, or a label whose ``label_ts``, is more than this many
        seconds after the service clock; null: no bound (replaying simulated future data).
    max_past_days : float or None
        Reject (422) an event more than this many days before the newest event seen (the
        warm-start history counts); null: no bound.
    token_env : str
        Environment variable holding the bearer token that ``POST /score`` and ``POST /label``
        require; a token is required when ``host`` is not a loopback address.
    label_token_env : str or None
        Environment variable holding a token for ``POST /label`` alone (unset: ``token_env``'s).
    body_timeout_s : float
        Time allowed to receive a request body (longer: ``408``).
    arms : ArmsConf
        Challengers beside the champion (A/B by card or shadow) and the decision log
        (:mod:`fraud_dask.score.arms`); no challenger: the champion alone.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    warm_start_days: int | None = None
    max_body_bytes: int = 65536
    lifetime_s: float = 0.0
    max_future_s: float | None = 300.0
    max_past_days: float | None = 7.0
    token_env: str = "FRAUD_DASK_SERVE_TOKEN"
    label_token_env: str | None = "FRAUD_DASK_LABEL_TOKEN"
    body_timeout_s: float = 10.0
    arms: ArmsConf = field(default_factory=ArmsConf)


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
    stage_features : bool
        ``task=score`` in two passes: write the period's features (the model's inputs and the
        carried columns) to a hidden staging dataset beside ``output``, on its filesystem, then
        score from those files; the staging dataset is removed at the end, whatever happens.
        The feature build's shuffles and the slow scoring tasks then never share a worker's
        memory (10 M rows in 4 GiB workers, docs/benchmarks.md). false: one graph from the
        source to the scores (no staging I/O; for periods that fit in the workers' memory).
    serve : ServeConf
        The scoring service.
    """

    start: str | None = None
    end: str | None = None
    output: str | None = None
    threshold: float = 0.5
    top_reasons: int = 3
    exact_recency: bool = True
    stage_features: bool = True
    serve: ServeConf = field(default_factory=ServeConf)


def as_serve_conf(conf: Any) -> ServeConf:
    """``score.serve`` as a checked :class:`ServeConf`, defaults filled in.

    Parameters
    ----------
    conf : ServeConf, DictConfig or mapping
        The ``score.serve`` node (keys it lacks take the schema's defaults).

    Returns
    -------
    ServeConf

    Raises
    ------
    UserError
        A value has the wrong type or range (see :func:`check_serve_conf`).
    """
    from omegaconf import OmegaConf

    from fraud_dask.errors import UserError

    if isinstance(conf, ServeConf):
        out = conf
    else:
        try:
            node = OmegaConf.merge(OmegaConf.structured(ServeConf), conf)
        except Exception as exc:  # omegaconf raises several types; re-raise one clear one
            raise UserError(f"score.serve: {exc}") from exc
        out = OmegaConf.to_object(node)  # type: ignore[assignment]
    check_serve_conf(out)
    return out


def check_serve_conf(conf: Any) -> None:
    """Check ``score.serve``'s values before any cluster starts.

    Parameters
    ----------
    conf : ServeConf or DictConfig
        The ``score.serve`` node.

    Raises
    ------
    UserError
        The port is not an integer in 0-65535 (0: any free port), or a time bound or the body
        timeout is not a positive number.
    """
    from fraud_dask.errors import UserError

    port = getattr(conf, "port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(
            f"score.serve.port: got {port!r}, expected a TCP port 0-65535 (0: any free port)"
        )
    for name, nullable in (("max_future_s", True), ("max_past_days", True),
                           ("body_timeout_s", False)):  # fmt: skip
        value = getattr(conf, name, None)
        if value is None and nullable:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            expected = "a positive number" + (" or null (no bound)" if nullable else "")
            raise UserError(f"score.serve.{name}: got {value!r}, expected {expected}")
