"""The fold models on their test rows: exact metrics, means over the folds, warnings, report.

Each fold's test rows drop the cards already known compromised (the split's rule). The metrics
are exact (:func:`fraud_dask.metrics.evaluate`); ``test.<metric>`` is the mean over the folds,
with ``test.<metric>_std`` and ``test.per_fold``; the baseline gets the same under ``baseline``.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraud_dask.config import Config

log = logging.getLogger(__name__)

HEADLINE = ("roc_auc", "average_precision", "card_precision_at_100", "recall_at_fpr")


def aggregate(per_fold: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean, standard deviation and count over the folds of each headline metric, and the
    per-fold values; a fold without a value (no fraud) is left out."""
    out: dict[str, Any] = {}
    for key in HEADLINE:
        # a fold without a fraud has no AP, recall or CP@k: it is left out (and flagged by
        # fold_warnings), never averaged in as a zero
        values = [ev[key] for ev in per_fold.values() if ev.get(key) is not None]
        out[key] = statistics.fmean(values) if values else None
        out[f"{key}_std"] = statistics.pstdev(values) if len(values) > 1 else 0.0
        out[f"{key}_folds"] = len(values)
    out["per_fold"] = {
        fold: {k: ev.get(k) for k in (*HEADLINE, "n", "n_fraud", "threshold_at_fpr")}
        for fold, ev in per_fold.items()
    }
    return out


def fold_warnings(per_fold: dict[str, dict[str, Any]], min_frauds: int) -> list[dict[str, Any]]:
    """Warnings for test folds whose frauds (after the known-compromised cards are dropped) are
    too few to measure: 0 (left out of the means) or fewer than ``split.min_test_frauds``."""
    out = []
    for fold, ev in per_fold.items():
        n_fraud = int(ev.get("n_fraud") or 0)
        if n_fraud == 0:
            message = (
                f"test fold {fold} holds no fraud among {ev.get('n', 0)} test rows: its AP, "
                "recall and CP@k are undefined and left out of the means"
            )
        elif n_fraud < min_frauds:
            message = (
                f"test fold {fold} holds {n_fraud} frauds among {ev.get('n', 0)} test rows "
                f"(< split.min_test_frauds={min_frauds}): its metrics are noisy"
            )
        else:
            continue
        log.warning("%s", message)
        out.append({"kind": "test_frauds", "fold": fold, "message": message})
    return out


def evaluate_folds(
    cfg: Config,
    frame: Any,
    models: dict[str, dict[str, Any]],
    folds: list[Any],
    *,
    k: int = 100,
    max_fpr: float = 0.01,
) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, Any]]]]:
    """Exact metrics of every model on every fold's test rows; returns (metrics, full results).

    Parameters
    ----------
    cfg : fraud_dask.config.Config
        The run config (``split``: the known-compromised rule and ``min_test_frauds``).
    frame : dask.dataframe.DataFrame
        The feature frame.
    models : dict
        Fold name -> model name -> model, the main model first.
    folds : list of fraud_dask.split.Fold
        The folds to evaluate.
    k, max_fpr : int, float
        Cards per day of card precision@k, and the false-positive rate of recall@FPR.
    """
    from fraud_dask.metrics import evaluate
    from fraud_dask.split import select_test

    full: dict[str, dict[str, dict[str, Any]]] = {}
    for i, fold in enumerate(folds):
        test = select_test(
            frame, fold, rule=cfg.split.known_compromised, since=cfg.split.known_since
        )
        test = test.persist()  # scored by every model of the fold
        for name, model in models[fold.name].items():
            full.setdefault(name, {})[fold.name] = evaluate(model.score(test), k=k, max_fpr=max_fpr)
        log.info("evaluated fold %s (%d/%d)", fold.name, i + 1, len(folds))
    names = list(full)
    metrics: dict[str, Any] = {"test": aggregate(full[names[0]]), "model": names[0]}
    metrics["warnings"] = fold_warnings(full[names[0]], cfg.split.min_test_frauds)
    if len(names) > 1:
        metrics["baseline"] = aggregate(full[names[1]]) | {"model": names[1]}
    for name in names:
        for fold, ev in full[name].items():
            metrics.setdefault("details", {}).setdefault(name, {})[fold] = {
                k2: ev.get(k2) for k2 in ("n", "n_fraud", "alert_budgets", "card_precision")
            } | {"per_client": _client_figures(ev)}
    return metrics, full


def _client_figures(ev: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Rows, frauds and AP of each client in one fold (the monitoring rules compare with it)."""
    return {
        str(client): {k: figures.get(k) for k in ("n", "n_fraud", "average_precision")}
        for client, figures in (ev.get("per_client") or {}).items()
    }


def summary_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Report rows: per model, mean ± std over the folds of the headline metrics."""
    rows = []
    for key in ("test", "baseline"):
        if key not in metrics:
            continue
        m = metrics[key]
        name = metrics["model"] if key == "test" else m["model"]
        row = {"model": name, "folds": len(m["per_fold"])}
        for metric in HEADLINE:
            mean, std = m.get(metric), m.get(f"{metric}_std")
            row[metric] = None if mean is None else f"{mean:.4f} ± {std:.4f}"
        rows.append(row)
    return rows


def write_fold_report(
    cfg: Config,
    metrics: dict[str, Any],
    full: dict[str, Any],
    models: dict,
    folds: list,
    notes: list[str],
) -> str:
    """Write the run's ``report.html`` (curves, metrics per day, summed importance) and return
    its path."""
    from fraud_dask.report import write_report

    main = models[folds[0].name][metrics["model"]]
    importance: dict[str, float] = {}
    for fold in folds:
        for col, v in models[fold.name][metrics["model"]].feature_importance().items():
            importance[col] = importance.get(col, 0.0) + v
    path = write_report(
        cfg.run_dir,
        full,
        importance=importance,
        summary=summary_rows(metrics),
        title=f"fraud_dask: {main.kind} on {cfg.data.name}",
        notes=notes,
    )
    return str(path)


def load_models(root: str, folds: list[Any]) -> dict[str, dict[str, Any]]:
    """The models :func:`fraud_dask.train.folds.train_folds` saved under ``root`` for ``folds``
    (main model first, the baseline after it)."""
    from fraud_dask.train import BASELINE, Model

    out: dict[str, dict[str, Any]] = {}
    for fold in folds:
        folder = Path(root) / fold.name
        if not folder.is_dir():
            raise FileNotFoundError(
                f"evaluate: no models for fold {fold.name} under {root!r}; run task=train first "
                "or set task.model_dir"
            )
        names = sorted(p.name for p in folder.iterdir() if (p / "model.json").exists())
        names.sort(key=lambda n: n == BASELINE)  # the main model first
        out[fold.name] = {n: Model.load(str(folder / n)) for n in names}
    return out


def merge_warnings(*lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Warnings of several stages in order, a later warning of the same ``kind`` and ``fold``
    replacing an earlier one (the test folds' fraud counts after scoring replace the plan's)."""
    merged: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for items in lists:
        for w in items:
            fold = w.get("fold")
            key = (w.get("kind"), fold, None if fold else w.get("message"))
            merged.pop(key, None)
            merged[key] = w
    return list(merged.values())
