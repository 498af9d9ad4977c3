"""``task=compare``: champion vs challenger replayed on the same period, with bootstrap CIs.

Both registry versions (``compare.champion`` and ``compare.challenger`` of ``registry.name``)
score the same transactions of ``[compare.start, compare.end)`` with their own feature specs
(:func:`fraud_dask.score.batch.score_period`, history read so windows are complete), in one
``dask.compute``; the rows are joined on ``tx_id`` and compared by :mod:`fraud_dask.compare`.
Writes ``report.html`` into the run directory; the returned dict becomes ``metrics.json``.

Two versions from different sources, or whose models take different inputs, are refused with
one line naming both versions and what differs, unless ``compare.allow_incompatible=true``
(the differences are then logged and returned as ``incompatibilities``).

Example::

    python -m fraud_dask task=compare compare.challenger=7 compare.start=2025-03-01
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraud_dask.tasks import task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)


@task_entry
def run(cfg: Config, client: Client) -> dict[str, Any]:
    """Replay both models on the period and compare them.

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        Uses ``cfg.data``, ``cfg.registry`` (path, name), ``cfg.compare`` and ``cfg.run_dir``.
    client : distributed.Client
        The session's client; scoring runs on its cluster.

    Returns
    -------
    dict
        See :func:`fraud_dask.compare.compare_frames`, plus ``champion_version``,
        ``challenger_version``, ``incompatibilities`` (what differs, when allowed), ``start``,
        ``end`` and ``report``.

    Raises
    ------
    ValueError
        The two versions are the same; or (a :class:`fraud_dask.errors.UserError`) they are
        not comparable and ``compare.allow_incompatible`` is false.
    """
    import dask
    import pandas as pd

    from fraud_dask.compare import compare_frames, incompatibilities, render_html
    from fraud_dask.data import load_transactions
    from fraud_dask.errors import UserError
    from fraud_dask.registry import Registry
    from fraud_dask.score.batch import _utc, score_period
    from fraud_dask.split import Fold, KnownRule, KnownSince, _drop_known, known_compromised

    conf = cfg.compare
    if conf.decisions:  # the arms of a served A/B or shadow test, from their decision log
        from fraud_dask.score.arms import compare_decisions

        return compare_decisions(cfg)
    reg = Registry.from_conf(cfg.registry)
    name = str(cfg.registry.name)
    champ = reg.load(name, str(conf.champion))
    chall = reg.load(name, str(conf.challenger))
    if champ.version == chall.version:
        raise ValueError(
            f"compare: champion ({conf.champion}) and challenger ({conf.challenger}) are both "
            f"version {champ.version} of {name!r}; pick two different versions"
        )
    differences = incompatibilities(champ, chall, replay=str(cfg.data.name))
    if differences and not conf.allow_incompatible:
        raise UserError(
            f"compare: champion v{champ.version} and challenger v{chall.version} of {name!r} "
            f"are not comparable: {'; '.join(differences)}; "
            "set compare.allow_incompatible=true to compare them anyway"
        )
    for difference in differences:
        log.warning("compare: comparing anyway (compare.allow_incompatible): %s", difference)
    start, end = _utc(conf.start), _utc(conf.end)
    if start is None:
        start = load_transactions(cfg.data, columns=["ts"])["ts"].max().compute().floor("D")
    rule = KnownRule(conf.known_compromised)
    if rule is KnownRule.fraud_day:
        raise ValueError(
            "compare.known_compromised: use label_ts (labels known before the day) or none; "
            "fraud_day needs a training period, which a replay does not have"
        )
    a, _ = score_period(cfg.data, champ, start, end, top=0)
    b, _ = score_period(cfg.data, chall, start, end, top=0)
    keep = [c for c in ("tx_id", "ts", "card_id", "client_id", "amount", "is_fraud") if c in a]
    if "is_fraud" not in keep:
        raise ValueError("compare: the source has no is_fraud label; nothing to compare against")
    lazy = [a[[*keep, "score"]], b[["tx_id", "score"]]]
    if rule is KnownRule.label_ts:
        # every fraud of the source before the period's end whose label arrived before a day
        history = load_transactions(
            cfg.data, columns=["ts", "card_id", "is_fraud", "label_ts"], end=end
        )
        last = (end - pd.Timedelta(1, unit="ns")) if end is not None else pd.Timestamp.now("UTC")
        fold = Fold("compare", start.date(), start.date(), start.date(), last.date())
        lazy.append(known_compromised(history, fold, rule=rule, since=KnownSince.all))
    left, right, *known = dask.compute(*lazy)
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
    dropped = 0
    if known:
        before = len(frame)
        frame = _drop_known(frame, known[0], "ts", "card_id").reset_index(drop=True)
        dropped = before - len(frame)
        log.info("compare: %d rows of cards known compromised before their day left out", dropped)
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
        "known_compromised": rule.value,
        "rows_dropped_known_compromised": dropped,
        "incompatibilities": differences,
        "champion_version": champ.version,
        "challenger_version": chall.version,
        "start": start.isoformat(),
        "end": end.isoformat() if end is not None else None,
        "report": str(report),
    }
