"""``task=compare``: champion vs challenger replayed on the same period, with bootstrap CIs.

Both registry versions (``compare.champion`` and ``compare.challenger`` of ``registry.name``)
score the same transactions of ``[compare.start, compare.end)`` with their own feature specs
(:func:`fraud_dask.score.batch.score_period`, history read so windows are complete), in one
``dask.compute``; the rows are joined on ``tx_id`` and compared by :mod:`fraud_dask.compare`.
Writes ``report.html`` into the run directory; the returned dict becomes ``metrics.json``.

Example::

    python -m fraud_dask task=compare compare.challenger=7 compare.start=2025-03-01
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def run(cfg: Any, client: Any) -> dict[str, Any]:
    """Replay both models on the period and compare them.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        Uses ``cfg.data``, ``cfg.registry`` (path, name), ``cfg.compare`` and ``cfg.run_dir``.
    client : distributed.Client
        The session's client; scoring runs on its cluster.

    Returns
    -------
    dict
        See :func:`fraud_dask.compare.compare_frames`, plus ``champion_version``,
        ``challenger_version``, ``start``, ``end`` and ``report``.
    """
    import dask

    from fraud_dask.compare import compare_frames, render_html
    from fraud_dask.registry import Registry
    from fraud_dask.score.batch import _utc, score_period

    conf = cfg.compare
    reg = Registry.from_conf(cfg.registry)
    name = str(cfg.registry.name)
    champ = reg.load(name, str(conf.champion))
    chall = reg.load(name, str(conf.challenger))
    if champ.version == chall.version:
        raise ValueError(
            f"compare: champion ({conf.champion}) and challenger ({conf.challenger}) are both "
            f"version {champ.version} of {name!r}; pick two different versions"
        )
    start, end = _utc(conf.get("start")), _utc(conf.get("end"))
    if start is None:
        from fraud_dask.data import load_transactions

        start = load_transactions(cfg.data, columns=["ts"])["ts"].max().compute().floor("D")
    a, _ = score_period(cfg.data, champ, start, end, top=0)
    b, _ = score_period(cfg.data, chall, start, end, top=0)
    keep = [c for c in ("tx_id", "ts", "card_id", "client_id", "amount", "is_fraud") if c in a]
    if "is_fraud" not in keep:
        raise ValueError("compare: the source has no is_fraud label; nothing to compare against")
    left, right = dask.compute(a[[*keep, "score"]], b[["tx_id", "score"]])
    frame = left.rename(columns={"score": "score_champion"}).merge(
        right.rename(columns={"score": "score_challenger"}),
        on="tx_id",
        how="inner",
        validate="one_to_one",
    )
    if len(frame) != len(left) or len(frame) != len(right):
        raise RuntimeError(
            f"compare: the two models scored different rows ({len(left)} vs {len(right)})"
        )
    log.info("compare: v%d vs v%d on %d rows", champ.version, chall.version, len(frame))
    result = compare_frames(
        frame,
        n_boot=int(conf.n_boot),
        ci=float(conf.ci),
        k=int(conf.k),
        max_fpr=float(conf.max_fpr),
        seed=int(conf.seed),
    )
    title = f"{name}: challenger v{chall.version} vs champion v{champ.version}"
    report = Path(str(cfg.run_dir)) / "report.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render_html(result, title))
    return result | {
        "champion_version": champ.version,
        "challenger_version": chall.version,
        "start": start.isoformat(),
        "end": end.isoformat() if end is not None else None,
        "report": str(report),
    }
