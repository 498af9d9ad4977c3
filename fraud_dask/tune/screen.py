"""Time-consistent feature screening: keep the inputs whose signal holds on later periods.

For each validation fold a model trains on the fold's training period (the early period) and
scores the fold's later period; each feature group (one spec of the features config: a kind, an
entity and its windows, e.g. ``windows[0] card_id``; an input no spec made is its own group) is
then permuted, rows shuffled together within the group, on the training rows and on the later
rows, and the loss of ``tune.metric`` is its signal there. A group whose mean signal over the
validation folds on the later periods is at most ``tune.screen_min_gain`` is dropped, whatever
it did on the training period: a leak, a drifted encoding or a pattern that stopped. At most
``tune.screen_max_drop`` of the inputs go (the weakest first). The test folds play no part. The
folds run side by side, one worker task each, on the rows :func:`fraud_dask.tune.rows.
prepare_folds` holds on every worker.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fraud_dask.tune.rows import FoldRows

log = logging.getLogger(__name__)


def feature_groups(
    features: Any, frame_columns: list[str], inputs: list[str]
) -> dict[str, list[str]]:
    """Model inputs grouped by the spec that made them (``<kind>[<i>] <entity>``); inputs no
    spec made (``amount``, a source's own columns) are groups of one (``input <name>``)."""
    from fraud_dask.features.config import as_features_conf, spec_groups
    from fraud_dask.features.plan import Plan, Planner

    conf = as_features_conf(features)
    wanted = set(inputs)
    groups: dict[str, list[str]] = {}
    for kind, specs in spec_groups(conf):
        for i, spec in enumerate(specs):
            try:
                planned = spec.plan(Planner(Plan(), frame_columns, kind, i, spec))
            except ValueError:
                continue  # a spec the frame cannot hold made no column of it
            names = [n for key, op in planned for _, n in op.outputs if n in wanted]
            if not names:
                continue
            entity = "+".join(planned[0][0]) if planned and planned[0][0] else "row"
            groups[f"{kind}[{i}] {entity}"] = names
    made = {n for names in groups.values() for n in names}
    for name in inputs:
        if name not in made:
            groups[f"input {name}"] = [name]
    return groups


def _predict(rows: FoldRows, x: np.ndarray, booster: Any, best: int) -> np.ndarray:
    import xgboost as xgb

    dm = xgb.DMatrix(
        x,
        feature_names=rows.columns,
        feature_types=rows.types,
        enable_categorical=rows.categorical,
    )
    return np.asarray(booster.predict(dm, iteration_range=(0, best + 1)), dtype=np.float64)


def _later(rows: FoldRows, x: np.ndarray, booster: Any, best: int, metric: str) -> Any:
    from fraud_dask.tune.objective import fold_metrics

    return fold_metrics(rows, _predict(rows, x, booster, best))[metric]


def _early(
    x: np.ndarray, y: np.ndarray, rows: FoldRows, booster: Any, best: int, metric: str
) -> Any:
    from sklearn.metrics import average_precision_score, roc_auc_score

    # the training rows are scored in-sample: AP (ROC AUC when that is the metric)
    score = roc_auc_score if metric == "roc_auc" else average_precision_score
    return float(score(y, _predict(rows, x, booster, best)))


def screen_fold(
    rows: FoldRows, conf: dict[str, Any], groups: dict[str, list[str]], metric: str, seed: int
) -> dict[str, Any]:
    """One fold: train on its early period, then each group's signal on both periods.

    Returns
    -------
    dict
        ``fold``, ``base`` (the metric on the training rows and on the later rows) and, per
        group, the metric lost when the group is permuted on each.
    """
    from fraud_dask.tune.objective import fit_local

    booster, best, _ = fit_local(rows, conf, seed=seed)
    fit_x = rows.fit_x if rows.stop_x is None else np.vstack([rows.fit_x, rows.stop_x])
    fit_y = rows.fit_y if rows.stop_y is None else np.concatenate([rows.fit_y, rows.stop_y])
    base = {
        "early": _early(fit_x, fit_y, rows, booster, best, metric),
        "later": _later(rows, rows.test_x, booster, best, metric),
    }
    index = {c: i for i, c in enumerate(rows.columns)}
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"fold": rows.name, "base": base, "groups": {}}
    for name, cols in groups.items():
        at = [index[c] for c in cols if c in index]
        if not at:
            continue
        lost = {}
        for period, x in (("early", fit_x), ("later", rows.test_x)):
            shuffled = x.copy()
            shuffled[:, at] = x[rng.permutation(len(x))][:, at]
            if period == "later":
                value = _later(rows, shuffled, booster, best, metric)
            else:
                value = _early(shuffled, fit_y, rows, booster, best, metric)
            lost[period] = None if value is None or base[period] is None else base[period] - value
        out["groups"][name] = lost
    return out


def decide(
    per_fold: list[dict[str, Any]],
    groups: dict[str, list[str]],
    *,
    min_gain: float,
    hold: float,
    max_drop: float,
    metric: str,
) -> dict[str, Any]:
    """The groups to drop from the folds' signals, with the reason for each decision.

    A group fails when its mean signal on the later periods is at most
    ``max(min_gain, hold * its mean signal on the training periods)``; failing groups are
    dropped by how far they fall short, while the dropped inputs stay within ``max_drop`` of
    all inputs.
    """
    n_inputs = sum(len(c) for c in groups.values())
    rows: list[dict[str, Any]] = []
    for name, cols in groups.items():
        early = [f["groups"][name]["early"] for f in per_fold if name in f["groups"]]
        later = [f["groups"][name]["later"] for f in per_fold if name in f["groups"]]
        early_v = [v for v in early if v is not None]
        later_v = [v for v in later if v is not None]
        early_mean = float(np.mean(early_v)) if early_v else None
        rows.append(
            {
                "group": name,
                "inputs": len(cols),
                "early_signal": early_mean,
                "later_signal": float(np.mean(later_v)) if later_v else None,
                "needed": max(min_gain, hold * max(early_mean or 0.0, 0.0)),
                "later_per_fold": later,
                "columns": cols,
            }
        )
    fails = sorted(
        (r for r in rows if r["later_signal"] is not None and r["later_signal"] <= r["needed"]),
        key=lambda r: r["later_signal"] - r["needed"],
    )
    budget, dropped = int(max_drop * n_inputs), []
    for r in fails:
        if r["inputs"] <= budget:
            budget -= r["inputs"]
            dropped.append(r["group"])
    for r in rows:
        later, early, needed = r["later_signal"], r["early_signal"], r["needed"]
        if r["group"] in dropped:
            r["decision"] = "dropped"
            r["reason"] = (
                f"{metric} lost when permuted: {_signed(early)} on the training periods, "
                f"{_signed(later)} on the later periods (needs > {needed:.4f}): the signal "
                "does not hold over time"
            )
        elif later is not None and later <= needed:
            r["decision"] = "kept"
            r["reason"] = (
                f"later signal {_signed(later)} <= {needed:.4f}, but tune.screen_max_drop "
                "is reached"
            )
        else:
            r["decision"] = "kept"
            r["reason"] = f"later signal {_signed(later)} > {needed:.4f}"
    columns = sorted(c for r in rows if r["group"] in dropped for c in r["columns"])
    return {"dropped": columns, "dropped_groups": dropped, "table": rows}


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


def screen_features(
    client: Any, cfg: Any, frame: Any, base: dict[str, Any], folds: list[Any]
) -> dict[str, Any]:
    """Screen the model inputs on the validation folds (see the module's description).

    Parameters
    ----------
    client : distributed.Client
        The session's client; one worker task per fold.
    cfg : omegaconf.DictConfig or Config
        ``tune`` (metric, ``screen_*``), ``features``, ``split``, ``seed``.
    frame : dask.dataframe.DataFrame
        The feature frame.
    base : dict
        The model config (:func:`fraud_dask.train.folds.model_conf`).
    folds : list of Fold
        The validation folds.

    Returns
    -------
    dict
        ``dropped`` (input columns), ``dropped_groups``, ``table`` (per group: inputs, mean
        signal on the training and the later periods, per fold, decision and reason), ``rule``.
    """
    from fraud_dask.tune.rows import model_inputs, prepare_folds

    conf = cfg.tune
    metric = str(conf.metric)
    inputs = model_inputs(frame.dtypes, base)
    if conf.screen_groups:
        groups = feature_groups(cfg.features, list(frame.columns), inputs)
    else:
        groups = {f"input {c}": [c] for c in inputs}
    futures, _ = prepare_folds(client, cfg, frame, base, folds)
    tasks = [
        client.submit(screen_fold, f, base, groups, metric, int(cfg.seed), pure=False)
        for f in futures
    ]
    per_fold = client.gather(tasks)
    client.cancel(futures)
    out = decide(
        per_fold,
        groups,
        min_gain=float(conf.screen_min_gain),
        hold=float(conf.screen_hold),
        max_drop=float(conf.screen_max_drop),
        metric=metric,
    )
    out["rule"] = (
        f"Each validation fold trains on its early period and scores its later period; a "
        f"feature group is dropped when permuting it costs at most max({conf.screen_min_gain:g}, "
        f"{conf.screen_hold:g} x its cost on the training period) of {metric} on the later "
        f"periods (means of {len(folds)} folds); at most {conf.screen_max_drop:.0%} of the "
        "inputs are dropped, the weakest first."
    )
    out["per_fold_base"] = [{"fold": f["fold"], **f["base"]} for f in per_fold]
    for name in out["dropped_groups"]:
        log.warning("tune screen: dropped %s", name)
    log.info("tune screen: %d of %d inputs dropped", len(out["dropped"]), len(inputs))
    return out
