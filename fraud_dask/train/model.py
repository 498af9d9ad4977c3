"""A trained model (XGBoost booster or logistic coefficients): lazy scoring, saving, loading.

Scoring is one pure function of a partition (:meth:`TrainedModel.predict_partition`), applied
lazily with ``map_partitions(..., meta=...)``; it serves a single batch online unchanged.
XGBoost predictions always use ``iteration_range=(0, best_iteration + 1)``. Models are saved in
XGBoost's own UBJSON format (or JSON coefficients for the logistic model) next to a
``model.json`` describing the inputs; nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.train.config import require_columns
from fraud_dask.train.encode import encode_partition

FORMAT_VERSION = 1
#: Boosters loaded in this process, by digest of their bytes (workers score many partitions).
_BOOSTERS: dict[str, Any] = {}


def _booster_from_raw(raw: bytes, device: str) -> Any:
    import xgboost as xgb

    key = hashlib.sha256(raw).hexdigest() + device
    if key not in _BOOSTERS:
        booster = xgb.Booster(model_file=bytearray(raw))
        booster.set_param({"device": device, "nthread": 1})
        _BOOSTERS[key] = booster
    return _BOOSTERS[key]


def _score_xgboost(matrix: pd.DataFrame, raw: bytes, device: str, rounds: int) -> np.ndarray:
    import xgboost as xgb

    booster = _booster_from_raw(raw, device)
    if not len(matrix):
        return np.empty(0, dtype=np.float32)
    data: Any = matrix.to_numpy(dtype=np.float32)
    if device == "cuda":
        import cupy

        data = cupy.asarray(data)
    types = booster.feature_types
    dm = xgb.DMatrix(
        data, feature_names=list(matrix.columns), feature_types=types, enable_categorical=True
    )
    out = booster.predict(dm, iteration_range=(0, rounds))
    return np.asarray(out.get() if hasattr(out, "get") else out, dtype=np.float32)


def _score_logistic(matrix: pd.DataFrame, coef: dict[str, Any]) -> np.ndarray:
    x = matrix.to_numpy(dtype=np.float64)
    mean, scale = np.asarray(coef["mean"]), np.asarray(coef["scale"])
    z = (x - mean) / scale
    z[np.isnan(z)] = 0.0  # a missing input counts as the training mean
    logit = z @ np.asarray(coef["coef"]) + float(coef["intercept"])
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


@dataclass
class TrainedModel:
    """A fitted model and everything needed to score new rows with it.

    Attributes
    ----------
    kind : str
        ``"xgboost"`` or ``"logistic"``.
    columns : list of str
        Inputs, in model order.
    categories : dict
        Fixed category list per categorical input.
    device : str
        Device the model trained on (``cpu`` or ``cuda``); scoring uses it too.
    booster : xgboost.Booster or None
        The XGBoost model.
    best_iteration : int or None
        Best round (0-based) chosen by early stopping, else the last round.
    coef : dict or None
        Logistic model: ``mean``, ``scale``, ``coef`` (per input) and ``intercept``.
    info : dict
        Training facts: rows, frauds, parameters, positive weight, evaluation history.
    """

    kind: str
    columns: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    device: str = "cpu"
    booster: Any = None
    best_iteration: int | None = None
    coef: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def iteration_range(self) -> tuple[int, int]:
        """``(0, best_iteration + 1)``: the rounds predictions use."""
        if self.best_iteration is None:
            raise ValueError(f"{self.kind} model has no boosting rounds")
        return 0, int(self.best_iteration) + 1

    def _raw(self) -> bytes:
        return bytes(self.booster.save_raw("ubj"))

    def predict_partition(self, part: pd.DataFrame, _raw: bytes | None = None) -> np.ndarray:
        """Fraud probabilities of the rows of one pandas frame (a partition or a batch).

        Parameters
        ----------
        part : pandas.DataFrame
            Rows holding every input column.

        Returns
        -------
        numpy.ndarray
            float32 scores in [0, 1], one per row.
        """
        require_columns(self.columns, part.columns, f"{self.kind} model scoring")
        matrix = encode_partition(part, self.columns, self.categories)
        if self.kind == "xgboost":
            raw = _raw if _raw is not None else self._raw()
            return _score_xgboost(matrix, raw, self.device, self.iteration_range[1])
        assert self.coef is not None
        return _score_logistic(matrix, self.coef)

    def score(self, frame: Any, score_col: str = "score") -> Any:
        """The frame with a ``score_col`` column of fraud probabilities, lazily.

        Parameters
        ----------
        frame : dask.dataframe.DataFrame
            Rows holding every input column.
        score_col : str
            Name of the new column.

        Returns
        -------
        dask.dataframe.DataFrame
            Same rows and partitions, plus ``score_col`` (float32).
        """
        import dask

        require_columns(self.columns, frame.columns, f"{self.kind} model scoring")
        meta = frame._meta.assign(**{score_col: np.empty(0, dtype=np.float32)})
        # One copy of the model in the graph, shared by every partition's task.
        raw = dask.delayed(self._raw(), pure=True) if self.kind == "xgboost" else None
        shell = TrainedModel(
            self.kind,
            self.columns,
            self.categories,
            self.device,
            None,
            self.best_iteration,
            self.coef,
            {},
        )
        return frame.map_partitions(_assign_score, shell, score_col, raw, meta=meta)

    def feature_importance(self, kind: str = "gain") -> dict[str, float]:
        """Importance per input: XGBoost ``gain`` (or ``weight``, ``cover``...), or |coef|."""
        if self.kind == "xgboost":
            scores = self.booster.get_score(importance_type=kind)
            return {c: float(scores.get(c, 0.0)) for c in self.columns}
        assert self.coef is not None
        return {c: abs(float(v)) for c, v in zip(self.columns, self.coef["coef"], strict=True)}

    def describe(self) -> dict[str, Any]:
        """JSON description: kind, inputs, categories, best iteration, training facts."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "columns": list(self.columns),
            "categories": {k: list(v) for k, v in self.categories.items()},
            "device": self.device,
            "best_iteration": self.best_iteration,
            "info": self.info,
        }

    def save(self, path: str, storage_options: dict[str, Any] | None = None) -> dict[str, str]:
        """Write the model into folder ``path`` (local or fsspec URL) without pickle.

        ``model.ubj`` (XGBoost UBJSON) or ``coefficients.json`` (logistic), plus ``model.json``.

        Returns
        -------
        dict
            File role -> path written.
        """
        import fsspec

        fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
        fs.makedirs(root, exist_ok=True)
        written = {}
        if self.kind == "xgboost":
            target = f"{root}/model.ubj"
            with fs.open(target, "wb") as fh:
                fh.write(self._raw())
        else:
            target = f"{root}/coefficients.json"
            with fs.open(target, "w") as fh:
                json.dump({"columns": self.columns, **(self.coef or {})}, fh, indent=2)
        written["model"] = target
        with fs.open(f"{root}/model.json", "w") as fh:
            json.dump(self.describe(), fh, indent=2, default=_json_default)
        written["metadata"] = f"{root}/model.json"
        return written

    @classmethod
    def load(cls, path: str, storage_options: dict[str, Any] | None = None) -> TrainedModel:
        """Read a model written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            ``path`` holds no ``model.json``.
        ValueError
            The metadata is of an unknown format or kind.
        """
        import fsspec

        fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
        meta_path = f"{root}/model.json"
        if not fs.exists(meta_path):
            raise FileNotFoundError(f"no model.json in {path!r}: not a saved fraud_dask model")
        with fs.open(meta_path, "r") as fh:
            meta = json.load(fh)
        if meta.get("format_version") != FORMAT_VERSION or meta.get("kind") not in (
            "xgboost",
            "logistic",
        ):
            raise ValueError(
                f"{meta_path}: got format_version={meta.get('format_version')!r} "
                f"kind={meta.get('kind')!r}, expected {FORMAT_VERSION} and xgboost|logistic"
            )
        model = cls(
            kind=meta["kind"],
            columns=list(meta["columns"]),
            categories={k: list(v) for k, v in meta["categories"].items()},
            device=meta.get("device", "cpu"),
            best_iteration=meta.get("best_iteration"),
            info=meta.get("info", {}),
        )
        if model.kind == "xgboost":
            import xgboost as xgb

            with fs.open(f"{root}/model.ubj", "rb") as fh:
                model.booster = xgb.Booster(model_file=bytearray(fh.read()))
        else:
            with fs.open(f"{root}/coefficients.json", "r") as fh:
                coef = json.load(fh)
            coef.pop("columns", None)
            model.coef = coef
        return model


def _assign_score(
    part: pd.DataFrame, model: TrainedModel, score_col: str, raw: bytes | None
) -> pd.DataFrame:
    return part.assign(**{score_col: model.predict_partition(part, raw)})


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
