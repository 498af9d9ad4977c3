"""Distributed XGBoost: ``xgboost.dask`` with ``DaskQuantileDMatrix`` and hist, CPU or CUDA.

:meth:`XGBoostModel.fit` trains on frauds dealt evenly over the workers' partitions
(:func:`fraud_dask.train.balance.balance_stratified`, each partition holding the encoded float32
matrix), early-stops on a later-in-time validation frame, weighs the rare class as configured and
uses native categories, on CPU or CUDA (cupy) with the same code. Predictions always use
``iteration_range=(0, best_iteration + 1)``; contributions are the exact path-dependent TreeSHAP
values (:class:`fraud_dask.score.treeshap.TreeShap`, those of ``pred_contribs=True``). The model
is saved in XGBoost's own UBJSON format (``model.ubj``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
import weakref
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from fraud_dask.cluster import scheduler_workers
from fraud_dask.train.balance import balance_stratified, genuine_rate, sample_genuine
from fraud_dask.train.config import ModelConf, feature_columns, refits, xgb_params
from fraud_dask.train.encode import encode_partition, feature_types, learn_categories, matrix_meta
from fraud_dask.train.guard import (
    collective_config,
    default_bound,
    run_guarded,
)
from fraud_dask.train.models.base import Model, RowScorer
from fraud_dask.train.tracker import install as tracker_outside_scheduler
from fraud_dask.train.tracker import stop_trackers

log = logging.getLogger(__name__)

#: Boosters loaded in this process, by digest of their bytes and device (workers score many
#: partitions with one model).
_BOOSTERS: dict[str, Any] = {}
#: TreeShap tables per booster (weakly held) and iteration range.
_TREESHAP: weakref.WeakKeyDictionary[Any, dict[tuple[int, int], Any]] = weakref.WeakKeyDictionary()
#: The class-weight column of the balanced training partitions.
_WEIGHT = "__fraud_dask_weight__"


def _booster_from_raw(raw: bytes, device: str) -> Any:
    import xgboost as xgb

    key = hashlib.sha256(raw).hexdigest() + device
    if key not in _BOOSTERS:
        booster = xgb.Booster(model_file=bytearray(raw))
        booster.set_param({"device": device, "nthread": 1})
        _BOOSTERS[key] = booster
    return _BOOSTERS[key]


def _tree_shap(booster: Any, iteration_range: tuple[int, int]) -> Any:
    from fraud_dask.score.treeshap import TreeShap

    per_booster = _TREESHAP.setdefault(booster, {})
    if iteration_range not in per_booster:
        per_booster[iteration_range] = TreeShap(booster, iteration_range)
    return per_booster[iteration_range]


class _TreeRows(RowScorer):
    """The online path of an XGBoost model: score and TreeSHAP values of one row from the same
    compiled tables (:class:`~fraud_dask.score.treeshap.TreeShap`), one thread."""

    def __init__(self, model: XGBoostModel) -> None:
        super().__init__(model)
        model.booster.set_param({"nthread": 1})
        self.shap = _tree_shap(model.booster, model.iteration_range)
        if self.shap.objective != "binary:logistic":
            raise ValueError(
                f"online scoring: expected a binary:logistic model, got {self.shap.objective!r}"
            )
        # load (the first time ever: compile) the compiled tree passes now, not on the first event
        blank = np.full((1, self.shap.n_features), np.nan, np.float32)
        self.shap.margin(blank)
        self.shap.contributions(blank)

    def score(self, row: np.ndarray) -> float:
        margin = float(self.shap.margin(row)[0])
        if margin >= 0:
            return float(np.float32(1.0 / (1.0 + math.exp(-margin))))
        e = math.exp(margin)  # no overflow for a very negative margin
        return float(np.float32(e / (1.0 + e)))

    def contributions(self, row: np.ndarray) -> np.ndarray:
        return np.asarray(self.shap.contributions(row)[0, :-1])  # the last column is the bias


@dataclass
class XGBoostModel(Model):
    """A booster and the round early stopping chose.

    Attributes
    ----------
    booster : xgboost.Booster or None
        The model (None in a :meth:`shell`).
    best_iteration : int or None
        Best round (0-based) chosen by early stopping, else the last round.
    """

    kind: ClassVar[str] = "xgboost"
    uses_validation: ClassVar[bool] = True

    booster: Any = None
    best_iteration: int | None = None

    @property
    def iteration_range(self) -> tuple[int, int]:
        """``(0, best_iteration + 1)``: the rounds predictions use."""
        if self.best_iteration is None:
            raise ValueError(f"{self.kind} model has no boosting rounds")
        return 0, int(self.best_iteration) + 1

    def _raw(self) -> bytes:
        return bytes(self.booster.save_raw("ubj"))

    def shell(self) -> tuple[Self, bytes | None]:
        return replace(self, booster=None, info={}), self._raw()

    def predict_matrix(
        self, matrix: np.ndarray | pd.DataFrame, raw: bytes | None = None
    ) -> np.ndarray:
        import xgboost as xgb

        booster = _booster_from_raw(raw if raw is not None else self._raw(), self.device)
        if not len(matrix):
            return np.empty(0, dtype=np.float32)
        data: Any = np.asarray(matrix, dtype=np.float32)
        if self.device == "cuda":
            import cupy

            data = cupy.asarray(data)
        dm = xgb.DMatrix(
            data,
            feature_names=list(self.columns),
            feature_types=booster.feature_types,
            enable_categorical=True,
        )
        out = booster.predict(dm, iteration_range=self.iteration_range)
        return np.asarray(out.get() if hasattr(out, "get") else out, dtype=np.float32)

    def contributions(self, matrix: np.ndarray, raw: bytes | None = None) -> np.ndarray:
        """Exact TreeSHAP values of the rounds predictions use (the bias column dropped)."""
        booster = self.booster if raw is None else _booster_from_raw(raw, self.device)
        out = _tree_shap(booster, self.iteration_range).contributions(matrix)
        return np.asarray(out[:, :-1])

    def row_scorer(self) -> RowScorer:
        """One compiled pass over the trees gives a row's margin and its SHAP values."""
        return _TreeRows(self)

    def feature_importance(self, kind: str = "gain") -> dict[str, float]:
        """XGBoost's importance of each input: ``gain`` (or ``weight``, ``cover``...)."""
        scores = self.booster.get_score(importance_type=kind)
        return {c: float(scores.get(c, 0.0)) for c in self.columns}

    def _state(self) -> dict[str, Any]:
        return {"best_iteration": self.best_iteration}

    def _write(self, fs: Any, root: str) -> str:
        target = f"{root}/model.ubj"
        with fs.open(target, "wb") as fh:
            fh.write(self._raw())
        return target

    @classmethod
    def _read(cls, fs: Any, root: str, meta: dict[str, Any]) -> Self:
        import xgboost as xgb

        with fs.open(f"{root}/model.ubj", "rb") as fh:
            booster = xgb.Booster(model_file=bytearray(fh.read()))
        return cls(**cls._common(meta), booster=booster, best_iteration=meta.get("best_iteration"))

    @classmethod
    def fit(
        cls,
        client: Any,
        train_frame: Any,
        valid_frame: Any | None,
        conf: ModelConf,
        device: str,
        *,
        label: str = "is_fraud",
        seed: int = 0,
    ) -> Self:
        """Train XGBoost on the cluster (see :func:`fraud_dask.train.train`).

        A validation period with one class only turns early stopping off (its rows join the
        training rows); partitions with one class and an early stop at round 1 are warnings in
        ``info["warnings"]``. With ``refit``, the model is retrained on the whole period with the
        best round count.
        """
        import xgboost.dask as dxgb

        columns = feature_columns(train_frame.dtypes, conf, label)
        categorical = list(conf.categorical)
        cats = learn_categories(train_frame, categorical, dict(conf.categories))
        params = xgb_params(conf) | {"device": device, "seed": int(seed)}
        params.setdefault("nthread", 1)
        rounds = int(conf.num_boost_round)
        stop = conf.early_stopping_rounds
        imbalance = str(conf.imbalance)
        needed = [*columns, label]
        warnings: list[dict[str, Any]] = []
        # the training and early-stopping periods counted in one pass over the frame
        (n, pos), (valid_rows, valid_pos) = _label_counts(train_frame, label, valid_frame)
        if pos == 0 or pos == n:
            raise ValueError(
                f"train: the training period has {pos} fraud(s) among {n} rows; "
                "both classes are needed"
            )
        early = valid_frame is not None and stop is not None and int(stop) > 0
        if valid_frame is not None:
            if valid_pos == 0 or valid_pos == valid_rows:
                import dask.dataframe as dd

                message = (
                    f"the early-stopping period holds {valid_pos} fraud(s) among {valid_rows} "
                    f"rows: AUC-PR is undefined there, so early stopping is off and "
                    f"model.num_boost_round={rounds} rounds are trained on the whole period"
                )
                log.warning("xgboost: %s", message)
                warnings.append({"kind": "validation_frauds", "message": message})
                train_frame = dd.concat([train_frame[needed], valid_frame[needed]])
                n, pos = n + valid_rows, pos + valid_pos
                early, valid_frame, valid_rows, valid_pos = False, None, 0, 0
        pos_weight = float(conf.pos_weight) if conf.pos_weight is not None else (n - pos) / pos
        if imbalance == "scale_pos_weight":
            params["scale_pos_weight"] = pos_weight
        # Above model.max_rows: every fraud and a share of the genuine rows, each weighing the
        # inverse of that share, so that the weighted rows stand for the whole period (its
        # class balance, the probabilities, the sketch) at a fraction of the rows per round.
        rate = genuine_rate(n, pos, conf.max_rows)
        if rate < 1.0:
            train_frame = train_frame[needed].map_partitions(
                sample_genuine, label, rate, int(seed), meta=train_frame[needed]._meta
            )
            log.info(
                "xgboost: %d training rows > model.max_rows=%d: every fraud and %.2f%% of the "
                "genuine rows, weighted %.3g",
                n,
                int(conf.max_rows or 0),
                100 * rate,
                1 / rate,
            )
        log.info("xgboost: %d rows (%d frauds), %d inputs, device=%s", n, pos, len(columns), device)
        fraud_weight = pos_weight if imbalance == "weights" else 1.0
        weighted = rate < 1.0 or imbalance == "weights"
        row_weight = (1.0 / rate, fraud_weight) if weighted else None
        fitted: dict[str, int] = {}
        fit_warnings: list[dict[str, Any]] = []
        collective_s = conf.collective_timeout_s

        # XGBoost's tracker in a process next to a worker, not in the scheduler (which a
        # LocalCluster keeps in this process): a tracker that aborts on a lost worker ends
        # one attempt, not the run
        tracker_outside_scheduler()

        def attempt() -> Any:
            # the whole fit, so that a retry after a lost worker rebuilds the balanced
            # partitions and matrices on the workers there are now
            fit_warnings.clear()
            matrices = _Matrices(client, columns, cats, label, device, params, conf, fit_warnings)
            dtrain = matrices.train(train_frame[needed], row_weight)
            fitted["rows"] = matrices.rows
            evals = None
            if valid_frame is not None:
                # Only the later period is evaluated: the metric on the training rows would cost
                # a pass (and, for AUC-PR, a distributed sort) over them every round, for nothing.
                evals = [(matrices.valid(valid_frame[needed]), "valid")]
            try:
                return dxgb.train(
                    client,
                    params,
                    dtrain,
                    num_boost_round=rounds,
                    evals=evals,
                    early_stopping_rounds=stop if early else None,
                    verbose_eval=False,
                    coll_cfg=collective_config(collective_s),
                )
            finally:
                # a failed fit may leave its tracker waiting for workers that never come
                stop_trackers(client)

        started = time.perf_counter()
        workers = len(scheduler_workers(client))
        bound = conf.timeout_s
        out = run_guarded(
            client,
            attempt,
            what=f"xgboost on {n} rows",
            retries=int(conf.retries or 0),
            bound_s=float(bound) if bound else default_bound(n + valid_rows, rounds, workers),
            collective_timeout_s=collective_s,
        )
        warnings.extend(fit_warnings)
        booster = out["booster"]
        best = int(booster.best_iteration) if early else booster.num_boosted_rounds() - 1
        seconds = time.perf_counter() - started
        if early and best == 0:
            _warn_best_round_1(warnings, booster.num_boosted_rounds(), valid_rows, valid_pos)
        log.info(
            "xgboost: %d rounds in %.1f s%s",
            booster.num_boosted_rounds(),
            seconds,
            f", best round {best + 1} on the validation rows" if early else "",
        )
        info = {
            "rows": n,
            "frauds": pos,
            "valid_rows": valid_rows,
            "valid_frauds": valid_pos,
            "warnings": warnings,
            "pos_weight": pos_weight,
            "imbalance": imbalance,
            "genuine_sampled": rate,
            "rows_fitted": fitted.get("rows", n),
            "params": params,
            "rounds_trained": booster.num_boosted_rounds(),
            "seconds": round(seconds, 2),
            "history": out.get("history", {}),
        }
        model = cls(columns, cats, device, info, booster=booster, best_iteration=best)
        if early and valid_frame is not None and conf.refit and not refits(conf, n + valid_rows):
            log.info(
                "xgboost: the early-stopped model is kept: %d training rows > "
                "model.refit_max_rows=%d",
                n + valid_rows,
                int(conf.refit_max_rows or 0),
            )
            info["refit"] = False
            info["refit_skipped"] = (
                f"{n + valid_rows} training rows > model.refit_max_rows={conf.refit_max_rows}"
            )
        if early and valid_frame is not None and refits(conf, n + valid_rows):
            import dask.dataframe as dd

            refit_conf = replace(
                conf, num_boost_round=best + 1, early_stopping_rounds=None, refit=False
            )
            whole = dd.concat([train_frame[needed], valid_frame[needed]])
            refit = cls.fit(client, whole, None, refit_conf, device, label=label, seed=seed)
            refit.info |= {"early_stopping": info, "refit": True}
            refit.info["warnings"] = warnings + list(refit.info.get("warnings", []))
            return refit
        return model


class _Matrices:
    """The balanced, encoded rows: ``DaskQuantileDMatrix`` for training, ``DaskDMatrix`` for
    early stopping."""

    def __init__(
        self,
        client: Any,
        columns: list[str],
        cats: dict[str, list[str]],
        label: str,
        device: str,
        params: dict[str, Any],
        conf: ModelConf,
        warnings: list[dict[str, Any]],
    ) -> None:
        self.client, self.columns, self.cats, self.label = client, columns, cats, label
        self.device, self.warnings = device, warnings
        self.rows = 0  # training rows in the matrix (after any sampling)
        self.max_bin = int(params.get("max_bin", 256))
        self.ppw = int(conf.partitions_per_worker)
        self.common = dict(
            feature_names=columns,
            feature_types=feature_types(columns, cats),
            enable_categorical=bool(cats),
        )

    def _balanced(
        self, frame: Any, weight: tuple[float, float] | None, period: str
    ) -> tuple[Any, list[int]]:
        # The balanced partitions hold the encoded float32 matrix itself: the DMatrix reads
        # them without another pass over the raw rows.
        meta = matrix_meta(self.columns).assign(**{self.label: np.empty(0, np.float32)})
        if weight is not None:
            meta[_WEIGHT] = np.empty(0, np.float32)
        prepare = functools.partial(
            _model_rows, columns=self.columns, cats=self.cats, label=self.label, weight=weight
        )
        part, sizes, frauds = balance_stratified(
            self.client, frame, self.label, self.ppw, prepare=prepare, meta=meta
        )
        _warn_single_class(self.warnings, period, frauds, sizes)
        return part, sizes

    def train(self, frame: Any, weight: tuple[float, float] | None) -> Any:
        import xgboost.dask as dxgb

        part, sizes = self._balanced(frame, weight, "training")
        self.rows = sum(sizes)
        return dxgb.DaskQuantileDMatrix(
            self.client,
            _matrix(part, self.columns, self.device, sizes),
            _vector(part[self.label], self.device, sizes),
            weight=_vector(part[_WEIGHT], self.device, sizes) if weight is not None else None,
            max_bin=self.max_bin,
            **self.common,
        )

    def valid(self, frame: Any) -> Any:
        """The early-stopping rows as a plain ``DaskDMatrix``: they are only predicted, one
        tree a round, and XGBoost predicts a quantile matrix by looking up every input of every
        row from its bin (``GetFvalueImpl``), 4-6x the cost of reading the values themselves
        (``scripts/bench-valid-matrix``). The same predictions, so the same metric and round;
        the matrix holds 8 bytes a value instead of 1."""
        import xgboost.dask as dxgb

        part, sizes = self._balanced(frame, None, "early-stopping")
        return dxgb.DaskDMatrix(
            self.client,
            _matrix(part, self.columns, self.device, sizes),
            _vector(part[self.label], self.device, sizes),
            **self.common,
        )


def _label_counts(
    frame: Any, label: str, valid: Any | None = None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows and frauds of ``frame`` and of ``valid`` (``(0, 0)`` when None), in one compute
    (none for a period the fold loop has noted: :func:`fraud_dask.train.frame.label_counts`)."""
    from fraud_dask.train.frame import label_counts

    found = label_counts([frame] if valid is None else [frame, valid], label)
    return found[0], (found[1] if valid is not None else (0, 0))


def _model_rows(
    part: pd.DataFrame,
    columns: list[str],
    cats: dict,
    label: str,
    weight: tuple[float, float] | None,
) -> pd.DataFrame:
    """The float32 model matrix of ``part`` plus the label and (``weight``: that of a genuine
    row and that of a fraud) a row weight column."""
    out = encode_partition(part, columns, cats)
    y = part[label].to_numpy(dtype=np.float32)
    out[label] = y
    if weight is not None:
        out[_WEIGHT] = np.where(y == 1, weight[1], weight[0]).astype(np.float32)
    return out


def _matrix(frame: Any, columns: list[str], device: str, lengths: list[int]) -> Any:
    x = frame[columns]
    if device != "cuda":
        return x
    import cupy

    arr = x.to_dask_array(lengths=lengths)
    return arr.map_blocks(cupy.asarray, dtype=np.float32, meta=cupy.empty((0, len(columns))))


def _vector(series: Any, device: str, lengths: list[int]) -> Any:
    series = series.astype("float32")
    if device != "cuda":
        return series
    import cupy

    arr = series.to_dask_array(lengths=lengths)
    return arr.map_blocks(cupy.asarray, dtype=np.float32, meta=cupy.empty((0,)))


def _warn_single_class(
    warnings: list[dict[str, Any]], period: str, frauds: list[int], sizes: list[int]
) -> None:
    """Note partitions that hold one class only (fewer frauds than partitions)."""
    lonely = [i for i, (p, m) in enumerate(zip(frauds, sizes, strict=True)) if p == 0 or p == m]
    if lonely:
        message = (
            f"{len(lonely)} of {len(sizes)} worker partitions of the {period} rows hold one class "
            f"only ({sum(frauds)} frauds for {len(sizes)} partitions)"
        )
        log.warning("xgboost: %s", message)
        warnings.append({"kind": "single_class_partition", "message": message})


def _warn_best_round_1(
    warnings: list[dict[str, Any]], rounds: int, valid_rows: int, valid_pos: int
) -> None:
    message = (
        f"early stopping chose round 1 of {rounds}: the validation "
        f"period ({valid_rows} rows, {valid_pos} frauds) did not improve after the first "
        "tree, so the model is a single tree; give early stopping a longer period "
        "(model.valid_days / model.valid_min_frauds) or check the labels"
    )
    log.warning("xgboost: %s", message)
    warnings.append({"kind": "best_round_1", "message": message})
