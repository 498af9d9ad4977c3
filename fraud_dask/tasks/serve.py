"""``task=serve``: the HTTP scoring service for a registered model.

Loads ``registry.version`` of ``registry.name`` (default: the champion), warm-starts an
:class:`~fraud_dask.score.online.OnlineScorer` from ``cfg.data`` (the history the features need
before the newest row, read through the data layer on the cluster), then serves
``POST /score``, ``POST /label`` and ``GET /health`` on ``score.serve.host:score.serve.port`` until
interrupted (or ``score.serve.lifetime_s``). The URL is written to ``<run_dir>/service.json`` once
listening. Card numbers in requests are tokenized with ``data.pan``'s key, as the batch path does;
the bearer tokens come from ``$FRAUD_DASK_SERVE_TOKEN`` (``score.serve.token_env``) and
``score.serve.label_token_env``, required when the host is not a loopback address.

Example::

    python -m fraud_dask task=serve score.serve.port=8080 score.threshold=0.3
    curl -s localhost:8080/score -d '{"tx_id": 1, "ts": "2025-03-01T10:00:00Z", ...}'
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Warm-start the scorer and serve until interrupted.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        Uses ``cfg.data`` (and its ``pan`` key), ``cfg.registry``, ``cfg.score`` (threshold,
        top_reasons, exact_recency, ``serve``: see :class:`~fraud_dask.score.config.ServeConf`),
        ``run_dir``.
    client : distributed.Client
        Reads the warm-start history on the cluster.

    Returns
    -------
    dict
        ``url``, ``model``, ``events`` scored, ``rejected`` requests, ``warm_start_s``,
        ``entities`` held at start.
    """
    import pandas as pd

    from fraud_dask.data.pan import hasher_from_conf
    from fraud_dask.registry import Registry
    from fraud_dask.score.config import check_serve_conf
    from fraud_dask.score.online import OnlineScorer
    from fraud_dask.score.service import make_app, serve, tokens_from_env

    conf = cfg.score
    serve_conf = conf.serve
    check_serve_conf(serve_conf)  # also when called from Python, not through the CLI
    token, label_token = tokens_from_env(
        serve_conf.host, serve_conf.token_env, serve_conf.label_token_env
    )
    reg = Registry.from_conf(cfg.registry)
    bundle = reg.load(str(cfg.registry.name), str(cfg.registry.version))
    source = cfg.data  # the reader's key and PII columns
    pii = [source.columns.get(c, c) for c in source.pii_columns]

    def scorer_of(bundle: Any) -> Any:
        return OnlineScorer.from_bundle(
            bundle,
            threshold=float(conf.threshold),
            top=int(conf.top_reasons),
            hasher=hasher_from_conf(source.pan),
            pan_columns=("card_id", *pii),
            max_future_s=serve_conf.max_future_s,
            max_past_days=serve_conf.max_past_days,
        )

    scorer = scorer_of(bundle)
    started = time.perf_counter()
    days = serve_conf.warm_start_days
    history = None
    if days is not None:
        from fraud_dask.data import load_transactions

        last = pd.Timestamp(load_transactions(cfg.data, columns=["ts"])["ts"].max().compute())
        history = load_transactions(cfg.data, start=last - pd.Timedelta(days=int(days)))
        history = client.compute(history).result()
        scorer.warm_start(history)
    else:
        scorer.warm_start_source(cfg.data, exact_recency=bool(conf.exact_recency))
    if serve_conf.arms.challengers:  # A/B or shadow challengers (fraud_dask.score.arms)
        from fraud_dask.score.arms import build_armed

        champion = scorer

        def warmed(challenger: Any) -> Any:
            other = scorer_of(challenger)
            if other.shares_state_with(champion):  # it reads the champion's feature state
                return other
            if history is not None:
                other.warm_start(history)
            else:
                other.warm_start_source(cfg.data, exact_recency=bool(conf.exact_recency))
            return other

        scorer = build_armed(
            serve_conf.arms,
            scorer,
            lambda name, version: reg.load(str(name or cfg.registry.name), version),
            warmed,
            str(cfg.run_dir),
        )
    warm_s = time.perf_counter() - started
    entities = scorer.entities
    log.info("warm start: %.1f s, entities %s", warm_s, entities)
    run_dir = Path(str(cfg.run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)

    def ready(url: str) -> None:
        # written whole, then renamed: a reader polling for the file never sees it half written
        part = run_dir / ".service.json.part"
        part.write_text(json.dumps({"url": url}) + "\n")
        os.replace(part, run_dir / "service.json")
        print(f"fraud_dask scoring service: {url}/score (POST), {url}/health (GET)", flush=True)

    app = make_app(
        scorer,
        max_body_bytes=serve_conf.max_body_bytes,
        token=token,
        label_token=label_token,
        body_timeout_s=serve_conf.body_timeout_s,
    )
    try:
        out = asyncio.run(
            serve(
                app,
                str(conf.serve.host),
                int(conf.serve.port),
                lifetime_s=float(conf.serve.lifetime_s),
                on_ready=ready,
            )
        )
    except KeyboardInterrupt:
        from fraud_dask.score.service import STATS

        out = {"events": app[STATS]["events"], "rejected": app[STATS]["rejected"]}
    if serve_conf.arms.challengers:  # the arms: who answered, and the decision log's files
        out |= {"arms": scorer.describe(), "served_by": scorer.served_by}
        out["decision_log"] = scorer.close()
    return out | {
        "model": {"name": bundle.name, "version": bundle.version},
        "warm_start_s": round(warm_s, 3),
        "entities": entities,
    }
