"""Champion and challengers side by side in ``task=serve``: A/B routing, shadow scoring, and the
decision log that ``task=compare`` reads once labels arrive.

:class:`ArmedScorer` holds one :class:`~fraud_dask.score.online.OnlineScorer` per arm. Arms
whose models were trained on the same features read one per-entity feature state: each event's
features are computed once and its histories updated once, and each arm only runs its model on
them (a second model costs its prediction, not a second feature computation); an arm with
other features keeps its own state. Every arm sees every event. An event's card (tokenized as
the batch path tokenizes it) is hashed with ``score.serve.arms.salt`` to a number in [0, 1):
the same card always lands in the same arm, and the arms' ``share`` of that interval is their
share of the traffic (the champion takes what the A/B challengers leave). Every arm scores
every event: the arm the card falls in answers, the others are logged only, and a ``shadow``
challenger never answers. :class:`DecisionLog` appends one row per arm and event (model name
and version, arm, served or not, score, threshold, decision, latency) to Parquet files that are
rotated by rows and by age and never rewritten. :func:`compare_arms` joins the log with the
labels and reports each arm's metrics with bootstrap intervals over cards, and the sample size
each challenger still needs.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHAMPION = "champion"


class ArmMode(enum.StrEnum):
    """How a challenger takes part."""

    ab = "ab"  # answers for its share of the cards
    shadow = "shadow"  # scored and logged, never answered


@dataclass
class ChallengerConf:
    """One challenger of ``score.serve.arms``.

    Attributes
    ----------
    version : str
        Its version (or alias) in the registry (``registry.name`` unless ``name`` is given).
    name : str or None
        Another registry model name.
    mode : ArmMode
        ``ab``: answers for ``share`` of the cards; ``shadow``: never answers.
    share : float
        Share of the cards it answers for (``ab``).
    """

    version: str = "latest"
    name: str | None = None
    mode: ArmMode = ArmMode.shadow
    share: float = 0.0


@dataclass
class ArmsConf:
    """``score.serve.arms``: challengers beside the champion, and the decision log.

    Attributes
    ----------
    challengers : list of ChallengerConf
        Empty: the champion alone, no decision log.
    salt : str
        Mixed into the card hash: a new salt draws a new split of the cards.
    log_dir : str or None
        Folder of the decision log (null: ``<run_dir>/decisions``).
    log_rows_per_file : int
        Rows per Parquet file of the log (a full file is written and a new one started).
    log_max_age_s : float
        Oldest unwritten row, in seconds, before the rows are written at the next event.
    """

    challengers: list[ChallengerConf] = field(default_factory=list)
    salt: str = "fraud_dask-ab"
    log_dir: str | None = None
    log_rows_per_file: int = 50_000
    log_max_age_s: float = 60.0


def check_arms(conf: Any) -> None:
    """Shares in [0, 1] summing to at most 1 over the A/B challengers; a positive file size.

    Raises
    ------
    fraud_dask.errors.UserError
    """
    from fraud_dask.errors import UserError

    total = 0.0
    for i, c in enumerate(conf.challengers):
        share = float(c.share)
        if not 0.0 <= share <= 1.0:
            raise UserError(
                f"score.serve.arms.challengers[{i}].share must be in [0, 1], got {share}"
            )
        if ArmMode(c.mode) is ArmMode.ab:
            total += share
        elif share:
            raise UserError(
                f"score.serve.arms.challengers[{i}]: a shadow challenger answers no traffic; "
                f"share must be 0, got {share}"
            )
    if total > 1.0 + 1e-9:
        raise UserError(f"score.serve.arms: the A/B shares sum to {total:g} > 1")
    if int(conf.log_rows_per_file) < 1:
        raise UserError(
            f"score.serve.arms.log_rows_per_file must be >= 1, got {conf.log_rows_per_file}"
        )


def bucket(card: Any, salt: str) -> float:
    """The card's place in [0, 1): a keyed hash, the same for the same card and salt."""
    digest = hashlib.blake2b(f"{salt}\x1f{card!s}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass
class Arm:
    """One arm: its name (``champion``, ``challenger-1``...), scorer, mode and share."""

    name: str
    scorer: Any
    mode: str
    share: float


class Router:
    """Cards to arms: the A/B challengers take consecutive slices of [0, 1) of their shares,
    the champion the rest."""

    def __init__(self, arms: list[Arm], salt: str) -> None:
        self.salt = salt
        self.cuts: list[tuple[float, str]] = []
        edge = 0.0
        for arm in arms:
            if arm.mode == ArmMode.ab and arm.share > 0:
                edge += arm.share
                self.cuts.append((edge, arm.name))

    def arm_of(self, card: Any) -> str:
        """The arm that answers for ``card``."""
        if not self.cuts:
            return CHAMPION
        u = bucket(card, self.salt)
        for edge, name in self.cuts:
            if u < edge:
                return name
        return CHAMPION


#: the decision log's columns, in order
LOG_COLUMNS = (
    "logged_at",
    "tx_id",
    "card",
    "event_ts",
    "arm",
    "served",
    "model",
    "version",
    "score",
    "threshold",
    "decision",
    "latency_ms",
    "error",
)


class DecisionLog:
    """Append-only Parquet: rows buffered, then written as a new file (never rewritten) when
    ``rows_per_file`` are held or the oldest is ``max_age_s`` old, and on :meth:`close`."""

    def __init__(self, folder: str | Path, rows_per_file: int, max_age_s: float) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows_per_file, self.max_age_s = int(rows_per_file), float(max_age_s)
        self.rows: list[tuple[Any, ...]] = []
        self.first_at = 0.0
        self.files: list[Path] = []
        self.prefix = f"decisions-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"

    def append(self, row: tuple[Any, ...]) -> None:
        if not self.rows:
            self.first_at = time.monotonic()
        self.rows.append(row)
        if len(self.rows) >= self.rows_per_file:
            self.flush()

    def tick(self) -> None:
        """Write the rows when the oldest is older than ``max_age_s``."""
        if self.rows and time.monotonic() - self.first_at >= self.max_age_s:
            self.flush()

    def flush(self) -> Path | None:
        """Write the held rows as the next file (a temporary name, then renamed)."""
        if not self.rows:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(zip(*self.rows, strict=True))
        table = pa.table(
            {
                "logged_at": pa.array(columns[0], pa.timestamp("us", tz="UTC")),
                "tx_id": pa.array(columns[1], pa.string()),
                "card": pa.array(columns[2], pa.string()),
                "event_ts": pa.array(columns[3], pa.string()),
                "arm": pa.array(columns[4], pa.string()),
                "served": pa.array(columns[5], pa.bool_()),
                "model": pa.array(columns[6], pa.string()),
                "version": pa.array(columns[7], pa.int64()),
                "score": pa.array(columns[8], pa.float64()),
                "threshold": pa.array(columns[9], pa.float64()),
                "decision": pa.array(columns[10], pa.string()),
                "latency_ms": pa.array(columns[11], pa.float64()),
                "error": pa.array(columns[12], pa.string()),
            }
        )
        out = self.folder / f"{self.prefix}-{len(self.files):06d}.parquet"
        tmp = self.folder / f".{out.name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, out)
        self.files.append(out)
        self.rows = []
        return out

    def close(self) -> list[Path]:
        """Write what is held; the files written."""
        self.flush()
        return list(self.files)


@dataclass
class StateGroup:
    """Arms that read one feature state: ``owner`` (the first arm's scorer) evaluates each
    event's features once and adds the event once; every arm scores the features."""

    owner: Any
    arms: list[Arm]


class ArmedScorer:
    """The champion and its challengers behind the scorer interface the service calls.

    Parameters
    ----------
    arms : list of Arm
        The champion first.
    salt : str
        The card hash's salt.
    decisions : DecisionLog or None
        Where each arm's decision goes.
    share_features : bool
        Arms whose scorers compute the same features
        (:meth:`~fraud_dask.score.online.OnlineScorer.shares_state_with`) read one feature
        state: each event's features are computed and its entities' histories updated once
        for them all (the first such arm's state is kept). False: every arm keeps its own.
    """

    def __init__(
        self,
        arms: list[Arm],
        salt: str,
        decisions: DecisionLog | None,
        *,
        share_features: bool = True,
    ) -> None:
        if not arms or arms[0].name != CHAMPION:
            raise ValueError("ArmedScorer: the first arm is the champion")
        self.arms = arms
        self.champion = arms[0].scorer
        self.router = Router(arms, salt)
        self.decisions = decisions
        self.served_by: dict[str, int] = {a.name: 0 for a in arms}
        #: the arms by feature state, the champion's first
        self.groups: list[StateGroup] = []
        for arm in arms:
            group = next(
                (
                    g
                    for g in self.groups
                    if share_features
                    and (g.owner is arm.scorer or g.owner.shares_state_with(arm.scorer))
                ),
                None,
            )
            if group is None:
                self.groups.append(StateGroup(arm.scorer, [arm]))
            else:
                arm.scorer.share_state(group.owner)
                group.arms.append(arm)
        self._state_of = {a.name: g.arms[0].name for g in self.groups for a in g.arms}

    def __getattr__(self, name: str) -> Any:
        # what the service reads besides score and label (threshold, entities, name, version,
        # the fields of the request schema) is the champion's
        if name in ("arms", "champion"):
            raise AttributeError(name)
        return getattr(self.champion, name)

    def describe(self) -> list[dict[str, Any]]:
        """Each arm: name, model, version, mode, share of the cards, and the arm whose feature
        state it reads (itself when it keeps its own)."""
        champion_share = 1.0 - sum(a.share for a in self.arms[1:] if a.mode == ArmMode.ab)
        return [
            {
                "arm": a.name,
                "model": a.scorer.name,
                "version": a.scorer.version,
                "mode": "champion" if a.name == CHAMPION else str(a.mode),
                "share": champion_share if a.name == CHAMPION else float(a.share),
                "features_of": self._state_of[a.name],
            }
            for a in self.arms
        ]

    def card_of(self, event: Mapping[str, Any]) -> Any:
        """The event's card as the batch path tokenizes it (the routing key)."""
        return self.champion._token("card_id", event.get("card_id"))

    def score(self, event: Mapping[str, Any], *, reasons: bool = True) -> dict[str, Any]:
        """Score the event with every arm; answer with the arm its card falls in.

        The champion scores first: an event it rejects (``ValueError``) is rejected and no arm's
        state changes. A challenger's own failure is logged and never reaches the response.
        Reason codes (``reasons``) are computed for the answering arm only.

        Per feature state (:attr:`groups`): the event's features are computed once, every arm
        reading the state scores them with its model, then the event is added to the state
        once (if some arm of the state scored it: a challenger that rejects one of its own
        model inputs does not keep the event from the state it shares). An arm's logged
        latency is the feature computation, its model and the state update.
        """
        started = time.perf_counter()
        card = self.card_of(event)
        served = self.router.arm_of(card)
        results: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for group in self.groups:
            first = time.perf_counter()
            champion = group.arms[0].name == CHAMPION
            try:  # the champion rejects an event as it does alone
                prepared = group.owner.prepare(event, every_field=champion)
            except (ValueError, OverflowError) as exc:
                if champion:
                    raise
                for arm in group.arms:
                    errors[arm.name] = f"{type(exc).__name__}: {exc}"
                continue
            shared = time.perf_counter() - first
            scored = []
            for arm in group.arms:
                own = time.perf_counter()
                try:
                    got = arm.scorer.score_prepared(
                        prepared, event, reasons=reasons and arm.name == served
                    )
                except (ValueError, OverflowError) as exc:
                    if arm.name == CHAMPION:
                        raise
                    errors[arm.name] = f"{type(exc).__name__}: {exc}"
                    continue
                got["latency_ms"] = shared + time.perf_counter() - own
                results[arm.name] = got
                scored.append(got)
            if scored:
                update = time.perf_counter()
                group.owner.commit(prepared)
                update = time.perf_counter() - update
                for got in scored:
                    got["latency_ms"] = (got["latency_ms"] + update) * 1e3
        if served not in results:  # the challenger failed: the champion answers
            served = CHAMPION
        self.served_by[served] += 1
        answer = dict(results[served])
        if self.decisions is not None:
            self._log(event, card, served, results, errors)
        answer["arm"] = served
        answer["latency_ms"] = (time.perf_counter() - started) * 1e3
        return answer

    def _log(
        self,
        event: Mapping[str, Any],
        card: Any,
        served: str,
        results: Mapping[str, Mapping[str, Any]],
        errors: Mapping[str, str],
    ) -> None:
        assert self.decisions is not None
        now = int(time.time() * 1e6)
        tx = results[CHAMPION]["tx_id"]
        ts = str(event.get("ts"))
        for arm in self.arms:
            got = results.get(arm.name)
            model = arm.scorer
            self.decisions.append(
                (
                    now,
                    str(tx),
                    None if card is None else str(card),
                    ts,
                    arm.name,
                    arm.name == served,
                    str(model.name),
                    int(model.version),
                    None if got is None else float(got["score"]),
                    float(model.threshold),
                    None if got is None else ("decline" if got["alert"] else "approve"),
                    None if got is None else float(got["latency_ms"]),
                    errors.get(arm.name),
                )
            )
        self.decisions.tick()

    def label(self, tx_id: Any, is_fraud: Any, label_ts: Any = None) -> int:
        """Feed a label to every feature state (once to a shared one); the champion's count of
        histories updated is returned."""
        updated = self.champion.label(tx_id, is_fraud, label_ts)
        for group in self.groups[1:]:
            try:
                group.owner.label(tx_id, is_fraud, label_ts)
            except (ValueError, KeyError) as exc:
                names = ", ".join(a.name for a in group.arms)
                log.warning("arms: %s could not take the label of %s: %s", names, tx_id, exc)
        return int(updated)

    def close(self) -> list[str]:
        """Write the decision log's held rows; the log's files."""
        return [] if self.decisions is None else [str(p) for p in self.decisions.close()]


# -- comparing the arms once labels arrive ------------------------------------------------------


def _ap(y: Any, s: Any) -> float | None:
    import numpy as np

    if not y.sum() or y.sum() == len(y):
        return None
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    # scikit-learn's average precision, ties grouped
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = distinct + 1 - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def arm_metrics(rows: Any) -> dict[str, Any]:
    """AP, alert rate, precision and recall of the alerts of one arm's labelled rows."""
    import numpy as np

    y = rows["is_fraud"].to_numpy(dtype=np.int64)
    s = rows["score"].to_numpy(dtype=np.float64)
    alert = rows["decision"].to_numpy() == "decline"
    caught = int((alert & (y == 1)).sum())
    return {
        "rows": len(rows),
        "frauds": int(y.sum()),
        "average_precision": _ap(y, s),
        "alert_rate": float(alert.mean()) if len(rows) else None,
        "precision": caught / int(alert.sum()) if alert.sum() else None,
        "recall": caught / int(y.sum()) if y.sum() else None,
    }


def _bootstrap(rows: Any, metric: str, n_boot: int, seed: int) -> list[float]:
    """``metric`` of ``n_boot`` resamples of the cards (a card's rows move together)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    codes, uniq = rows["card"].factorize()
    by_card = [np.flatnonzero(codes == i) for i in range(len(uniq))]
    out = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(by_card), len(by_card))
        idx = np.concatenate([by_card[i] for i in pick]) if len(pick) else np.array([], int)
        value = arm_metrics(rows.iloc[idx])[metric]
        if value is not None:
            out.append(float(value))
    return out


def compare_arms(
    decisions: Any,
    labels: Any,
    *,
    metric: str = "average_precision",
    n_boot: int = 500,
    alpha: float = 0.05,
    power: float = 0.8,
    seed: int = 0,
) -> dict[str, Any]:
    """Each arm's metrics on the cards it answered for, and each challenger against the champion.

    Parameters
    ----------
    decisions : pandas.DataFrame
        The decision log (:data:`LOG_COLUMNS`).
    labels : pandas.DataFrame
        ``tx_id`` and ``is_fraud`` of the transactions whose labels arrived.
    metric : str
        ``average_precision``, ``precision``, ``recall`` or ``alert_rate``.
    n_boot : int
        Bootstrap resamples of the cards.
    alpha, power : float
        For the sample size still needed: a two-sided test at ``alpha`` with ``power``.
    seed : int
        Bootstrap seed.

    Returns
    -------
    dict
        ``arms`` (per arm: served rows' metrics, ``ci`` of ``metric``), ``shadow`` (per arm: the
        metrics on every labelled row, the same rows for every arm: a paired view),
        ``differences`` (challenger - champion on their own traffic: value, ``ci``, ``n`` and
        ``n_needed``, the labelled rows per arm still needed to tell the difference), and the
        label coverage.
    """
    import numpy as np
    from scipy.stats import norm

    lab = labels[["tx_id", "is_fraud"]].copy()
    lab["tx_id"] = lab["tx_id"].astype(str)
    lab = lab.drop_duplicates("tx_id")
    rows = decisions[decisions["score"].notna()].merge(lab, on="tx_id", how="inner")
    served = rows[rows["served"]]
    out: dict[str, Any] = {
        "metric": metric,
        "events_logged": int(decisions.loc[decisions["arm"] == CHAMPION, "tx_id"].nunique()),
        "events_labelled": int(rows["tx_id"].nunique()),
        "arms": {},
        "shadow": {},
        "differences": {},
    }
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    boots: dict[str, list[float]] = {}
    for arm, part in served.groupby("arm", sort=False):
        got = arm_metrics(part)
        boots[str(arm)] = _bootstrap(part, metric, n_boot, seed)
        b = boots[str(arm)]
        got["ci"] = [float(np.percentile(b, lo)), float(np.percentile(b, hi))] if b else None
        out["arms"][str(arm)] = got
    for arm, part in rows.groupby("arm", sort=False):
        out["shadow"][str(arm)] = arm_metrics(part)
    champ = out["arms"].get(CHAMPION)
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    for arm, got in out["arms"].items():
        if arm == CHAMPION or champ is None:
            continue
        a, c = got[metric], champ[metric]
        if a is None or c is None:
            continue
        diff = float(a - c)
        k = min(len(boots[arm]), len(boots[CHAMPION]))
        d = np.array(boots[arm][:k]) - np.array(boots[CHAMPION][:k])
        se = float(np.std(d)) if k > 1 else float("nan")
        n = min(got["rows"], champ["rows"])
        needed = None
        if se > 0 and diff != 0:
            needed = int(np.ceil(n * (z * se / abs(diff)) ** 2))
        out["differences"][arm] = {
            "value": diff,
            "ci": [float(np.percentile(d, lo)), float(np.percentile(d, hi))] if k else None,
            "n": n,
            "n_needed": needed,
            "n_still_needed": None if needed is None else max(needed - n, 0),
        }
    return out


def build_armed(
    conf: Any,
    champion: Any,
    load: Any,
    make: Any,
    run_dir: str,
) -> ArmedScorer:
    """The champion's scorer and a scorer per challenger of ``conf`` (``score.serve.arms``).

    Parameters
    ----------
    conf : ArmsConf
        The challengers and the log.
    champion : OnlineScorer
        The champion's warm-started scorer.
    load : callable
        ``(name or None, version) -> ModelBundle`` from the registry.
    make : callable
        ``bundle -> OnlineScorer``, warm-started as the champion was (one that computes the
        champion's features reads the champion's state: it need not be warm-started).
    run_dir : str
        The run directory (the log goes to ``<run_dir>/decisions`` by default).
    """
    check_arms(conf)
    arms = [Arm(CHAMPION, champion, "champion", 0.0)]
    for i, c in enumerate(conf.challengers):
        bundle = load(c.name, str(c.version))
        arms.append(Arm(f"challenger-{i + 1}", make(bundle), str(ArmMode(c.mode)), float(c.share)))
    folder = conf.log_dir or str(Path(run_dir) / "decisions")
    armed = ArmedScorer(
        arms,
        str(conf.salt),
        DecisionLog(folder, int(conf.log_rows_per_file), float(conf.log_max_age_s)),
    )
    for a in armed.describe():
        log.info("arm %s: %s version %s, %s, share %.3f, features of %s", *a.values())
    return armed


def read_decisions(folder: str) -> Any:
    """The decision log's rows (every file of the folder)."""
    import pandas as pd
    import pyarrow.dataset as ds

    from fraud_dask.errors import InputNotFoundError

    files = sorted(p for p in Path(folder).glob("decisions-*.parquet"))
    if not files:
        raise InputNotFoundError(f"compare.decisions: no decision log file in {folder}")
    frame: pd.DataFrame = (
        ds.dataset([str(f) for f in files], format="parquet").to_table().to_pandas()
    )
    return frame


def compare_decisions(cfg: Any) -> dict[str, Any]:
    """``task=compare`` on a decision log: labels from ``cfg.data``, :func:`compare_arms`.

    Writes nothing but what the task returns (``metrics.json``).
    """
    import pandas as pd

    from fraud_dask.data import load_transactions

    conf = cfg.compare
    decisions = read_decisions(str(conf.decisions))
    wanted = set(decisions["tx_id"])
    source = load_transactions(cfg.data, columns=["tx_id", "is_fraud"]).compute()
    labels = source[source["tx_id"].astype(str).isin(wanted)]
    out = compare_arms(
        decisions,
        pd.DataFrame({"tx_id": labels["tx_id"].astype(str), "is_fraud": labels["is_fraud"]}),
        n_boot=int(conf.n_boot),
        alpha=1.0 - float(conf.ci),
        seed=int(conf.seed),
    )
    out["decisions"] = str(conf.decisions)
    for arm, got in out["arms"].items():
        log.info("arm %s: %s", arm, got)
    return out
