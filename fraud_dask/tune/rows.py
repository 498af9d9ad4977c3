"""The validation folds' rows, encoded once for trials that run inside worker tasks.

:func:`prepare_folds` selects, for each validation fold of the split (never a test fold), the
training rows cut into fit and early-stopping rows as ``task=train`` cuts them
(:func:`fraud_dask.train.folds.early_stopping_split`), and the fold's later, scored rows without
the cards already known compromised (:func:`fraud_dask.split.select_test`). Each fold becomes one
:class:`FoldRows` (float32 matrices and the few columns the metrics need) built on a worker and
copied to every worker, so a trial reads memory, not the feature frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: Columns of the scored rows kept for :func:`fraud_dask.metrics.evaluate`.
METRIC_COLUMNS = ("ts", "card_id", "amount", "is_fraud")


@dataclass
class FoldRows:
    """One validation fold, encoded: fit rows, early-stopping rows, scored rows.

    Attributes
    ----------
    name : str
        The fold's name (``validation-0``, ...).
    columns, types : list of str
        Model inputs in model order and their XGBoost feature types (``q`` or ``c``).
    fit_x, fit_y : numpy.ndarray
        Training rows before the early-stopping period.
    stop_x, stop_y : numpy.ndarray or None
        The end of the training period, for early stopping (None: no early stopping).
    test_x : numpy.ndarray
        The fold's later rows, scored by each trial.
    test : pandas.DataFrame
        Their ``ts``, ``card_id``, ``amount`` and ``is_fraud`` (for the metrics).
    """

    name: str
    columns: list[str]
    types: list[str]
    fit_x: np.ndarray
    fit_y: np.ndarray
    stop_x: np.ndarray | None
    stop_y: np.ndarray | None
    test_x: np.ndarray
    test: pd.DataFrame

    @property
    def categorical(self) -> bool:
        """Whether some input is a native category."""
        return "c" in self.types

    def drop(self, columns: list[str]) -> FoldRows:
        """The same rows without ``columns`` (a screening candidate)."""
        keep = [i for i, c in enumerate(self.columns) if c not in set(columns)]

        def cut(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else np.ascontiguousarray(x[:, keep])

        fit_x, test_x = cut(self.fit_x), cut(self.test_x)
        assert fit_x is not None and test_x is not None
        return FoldRows(
            self.name,
            [self.columns[i] for i in keep],
            [self.types[i] for i in keep],
            fit_x,
            self.fit_y,
            cut(self.stop_x),
            self.stop_y,
            test_x,
            self.test,
        )


def _encode(parts: list[pd.DataFrame], columns: list[str], cats: dict[str, list[str]]) -> Any:
    from fraud_dask.train.encode import encode_partition

    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    x = encode_partition(frame, columns, cats).to_numpy(dtype=np.float32)
    return np.ascontiguousarray(x), frame


def _fold_rows(
    name: str,
    fit: list[pd.DataFrame],
    stop: list[pd.DataFrame] | None,
    test: list[pd.DataFrame],
    columns: list[str],
    types: list[str],
    cats: dict[str, list[str]],
) -> FoldRows:
    fit_x, fit_frame = _encode(fit, columns, cats)
    stop_x, stop_y = None, None
    if stop is not None:
        stop_x, stop_frame = _encode(stop, columns, cats)
        stop_y = stop_frame["is_fraud"].to_numpy(dtype=np.float32)
    test_x, test_frame = _encode(test, columns, cats)
    return FoldRows(
        name,
        columns,
        types,
        fit_x,
        fit_frame["is_fraud"].to_numpy(dtype=np.float32),
        stop_x,
        stop_y,
        test_x,
        test_frame[list(METRIC_COLUMNS)].reset_index(drop=True),
    )


def model_inputs(dtypes: Any, conf: dict[str, Any]) -> list[str]:
    """:func:`fraud_dask.train.config.feature_columns` of a plain model config (typed first
    where the model layer takes only its typed ``ModelConf``)."""
    from fraud_dask.train import config as model_config

    typed: Any = conf
    if hasattr(model_config, "as_model_conf"):
        typed = model_config.as_model_conf(conf)
    return model_config.feature_columns(dtypes, typed)


def validation_folds(cfg: Any, frame: Any) -> list[Any]:
    """The split's validation folds; a :class:`~fraud_dask.errors.UserError` when it has none."""
    from fraud_dask.errors import UserError
    from fraud_dask.train.folds import folds_of

    try:
        folds = folds_of(cfg, frame, "validation")
    except ValueError as exc:
        raise UserError(f"task=tune needs validation folds: {exc}") from exc
    if not folds:
        raise UserError("task=tune: split has no validation folds (split.n_folds)")
    return folds


def prepare_folds(
    client: Any, cfg: Any, frame: Any, conf: dict[str, Any], folds: list[Any]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Build each validation fold's :class:`FoldRows` on the cluster, held by every worker.

    Parameters
    ----------
    client : distributed.Client
        The session's client.
    cfg : omegaconf.DictConfig
        The run config (``split``).
    frame : dask.dataframe.DataFrame
        The feature frame.
    conf : dict
        The model config (:func:`fraud_dask.train.folds.model_conf`): inputs, categories,
        early stopping.
    folds : list of Fold
        Validation folds (:func:`validation_folds`).

    Returns
    -------
    list of distributed.Future, list of dict
        One future per fold (replicated on every worker) and what each fold holds (rows,
        frauds, early-stopping days).
    """
    import dask

    from fraud_dask.split import select_test, select_train
    from fraud_dask.train.encode import feature_types, learn_categories
    from fraud_dask.train.folds import early_stopping_split

    columns = model_inputs(frame.dtypes, conf)
    needed = list(dict.fromkeys([*columns, *METRIC_COLUMNS]))
    built, facts = [], []
    for fold in folds:
        rows = select_train(frame, fold)
        warnings: list[dict[str, Any]] = []
        fit, stop, days = rows, None, 0
        if conf.get("early_stopping_rounds"):
            fit, stop, days = early_stopping_split(frame, rows, fold, conf, warnings)
        cats = learn_categories(rows, list(conf.get("categorical") or []), conf["categories"])
        test = select_test(
            frame, fold, rule=cfg.split.known_compromised, since=cfg.split.known_since
        )
        built.append(
            dask.delayed(_fold_rows)(
                fold.name,
                fit[needed].to_delayed(),
                None if stop is None else stop[needed].to_delayed(),
                test[needed].to_delayed(),
                columns,
                feature_types(columns, cats),
                cats,
            )
        )
        facts.append({"fold": fold.to_dict(), "early_stopping_days": days, "warnings": warnings})
    futures = client.compute(built)
    client.replicate(futures)
    for fact, rows in zip(facts, client.gather(client.map(_counts, futures)), strict=True):
        fact |= rows
        log.info("tune: %s %s", fact["fold"]["name"], rows)
    return futures, facts


def _counts(rows: FoldRows) -> dict[str, int]:
    stop = 0 if rows.stop_y is None else len(rows.stop_y)
    return {
        "fit_rows": len(rows.fit_y),
        "fit_frauds": int(rows.fit_y.sum()),
        "stop_rows": stop,
        "stop_frauds": 0 if rows.stop_y is None else int(rows.stop_y.sum()),
        "scored_rows": len(rows.test),
        "scored_frauds": int(rows.test["is_fraud"].sum()),
    }
