"""The model protocol: fit on a frame, predict a partition, contributions, save and load, describe.

A model kind is a subclass of :class:`Model` registered under its ``kind`` in
:data:`fraud_dask.train.models.MODELS`. The base class holds what every kind shares: the inputs
in model order, their fixed category lists, the device, the training facts, lazy scoring over a
Dask frame (one pure function of a partition applied with ``map_partitions(..., meta=...)``, which
serves a single batch online unchanged) and the on-disk layout: a ``model.json`` describing the
model next to the kind's own file (XGBoost's UBJSON, JSON coefficients...). Nothing is pickled.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from fraud_dask.train.config import ModelConf, require_columns
from fraud_dask.train.encode import encode_partition

#: Version of ``model.json``; a model saved under another version is refused, not guessed at.
FORMAT_VERSION = 1


class RowScorer:
    """One model row at a time: the online scorer's path (:meth:`Model.row_scorer`).

    Rows are :func:`~fraud_dask.train.encode.encode_partition` matrices of one row, inputs in
    model order. This default asks the model's batch methods; a kind with a faster path for a
    single row (XGBoost: one compiled pass over the trees) returns its own.
    """

    def __init__(self, model: Model) -> None:
        self.model = model

    def score(self, row: np.ndarray) -> float:
        """The fraud probability of the row (float32 precision, as batch scoring)."""
        return float(self.model.predict_matrix(row)[0])

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """Per-input contributions to the row's logit, shape ``(inputs,)``."""
        return np.asarray(self.model.contributions(row)[0])


@dataclass
class Model(ABC):
    """A fitted model and everything needed to score new rows with it.

    Subclasses set :attr:`kind`, add their fitted state as fields, and implement
    :meth:`fit`, :meth:`predict_matrix`, :meth:`contributions`, :meth:`feature_importance`,
    :meth:`_write` and :meth:`_read`; :meth:`row_scorer` may give a faster path for one row.

    Attributes
    ----------
    columns : list of str
        Inputs, in model order.
    categories : dict
        Fixed category list per categorical input.
    device : str
        Device the model trained on (``cpu`` or ``cuda``); scoring uses it too.
    info : dict
        Training facts: rows, frauds, parameters, warnings...
    """

    #: the ``model.kind`` this class answers to, also its name in ``model.json``
    kind: ClassVar[str]
    #: whether :meth:`fit` early-stops on a later-in-time validation frame (else it trains on it)
    uses_validation: ClassVar[bool] = False

    columns: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    device: str = "cpu"
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    @abstractmethod
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
        """Fit on the cluster; see :func:`fraud_dask.train.train` for the parameters."""

    @abstractmethod
    def predict_matrix(
        self, matrix: np.ndarray | pd.DataFrame, raw: bytes | None = None
    ) -> np.ndarray:
        """Fraud probabilities (float32) of the rows of a model matrix.

        Parameters
        ----------
        matrix : numpy.ndarray or pandas.DataFrame
            :func:`~fraud_dask.train.encode.encode_partition` output, inputs in model order.
        raw : bytes, optional
            The model's serialized state when this instance is a :meth:`shell` without it.
        """

    @abstractmethod
    def contributions(self, matrix: np.ndarray, raw: bytes | None = None) -> np.ndarray:
        """Per-input contributions to the score's logit, shape ``(rows, inputs)``."""

    @abstractmethod
    def feature_importance(self, kind: str = "gain") -> dict[str, float]:
        """Importance per input (non-negative; larger matters more)."""

    @abstractmethod
    def _write(self, fs: Any, root: str) -> str:
        """Write the kind's own model file into folder ``root`` of ``fs``; return its path."""

    @classmethod
    @abstractmethod
    def _read(cls, fs: Any, root: str, meta: dict[str, Any]) -> Self:
        """The model saved in ``root`` whose ``model.json`` holds ``meta``."""

    def _state(self) -> dict[str, Any]:
        """Kind-specific entries of :meth:`describe` (e.g. the best boosting round)."""
        return {}

    def row_scorer(self) -> RowScorer:
        """What scores one row and explains it, for the online scorer (:class:`RowScorer`)."""
        return RowScorer(self)

    def shell(self) -> tuple[Self, bytes | None]:
        """A light copy to ship in a task graph, and the bytes it scores with (or None).

        Large fitted state (a booster) travels once as ``raw`` instead of inside every task;
        the training facts stay behind.
        """
        return replace(self, info={}), None

    def predict_partition(self, part: pd.DataFrame, raw: bytes | None = None) -> np.ndarray:
        """Fraud probabilities of the rows of one pandas frame (a partition or a batch).

        Parameters
        ----------
        part : pandas.DataFrame
            Rows holding every input column.
        raw : bytes, optional
            See :meth:`predict_matrix`.

        Returns
        -------
        numpy.ndarray
            float32 scores in [0, 1], one per row.
        """
        require_columns(self.columns, part.columns, f"{self.kind} model scoring")
        return self.predict_matrix(encode_partition(part, self.columns, self.categories), raw)

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
        shell, raw = self.shell()
        # One copy of the model's bytes in the graph, shared by every partition's task.
        payload = dask.delayed(raw, pure=True) if raw is not None else None
        return frame.map_partitions(_assign_score, shell, score_col, payload, meta=meta)

    def describe(self) -> dict[str, Any]:
        """JSON description (``model.json``): kind, inputs, categories, device, training facts."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "columns": list(self.columns),
            "categories": {k: list(v) for k, v in self.categories.items()},
            "device": self.device,
            **self._state(),
            "info": self.info,
        }

    def save(self, path: str, storage_options: dict[str, Any] | None = None) -> dict[str, str]:
        """Write the model into folder ``path`` (local or fsspec URL) without pickle.

        The kind's own file (``model.ubj``, ``coefficients.json``...) plus ``model.json``.

        Returns
        -------
        dict
            File role (``model``, ``metadata``) -> path written.
        """
        import fsspec

        fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
        fs.makedirs(root, exist_ok=True)
        written = {"model": self._write(fs, root)}
        with fs.open(f"{root}/model.json", "w") as fh:
            json.dump(self.describe(), fh, indent=2, default=_json_default)
        written["metadata"] = f"{root}/model.json"
        return written

    @classmethod
    def load(cls, path: str, storage_options: dict[str, Any] | None = None) -> Model:
        """Read a model written by :meth:`save`, of the kind its ``model.json`` names.

        Raises
        ------
        FileNotFoundError
            ``path`` holds no ``model.json``.
        ValueError
            The metadata is of an unknown format or kind (or not a kind of ``cls``).
        """
        import fsspec

        from fraud_dask.train.models import MODELS

        fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
        meta_path = f"{root}/model.json"
        if not fs.exists(meta_path):
            raise FileNotFoundError(f"no model.json in {path!r}: not a saved fraud_dask model")
        with fs.open(meta_path, "r") as fh:
            meta = json.load(fh)
        kinds = [k for k, c in MODELS.items() if issubclass(c, cls)]
        if meta.get("format_version") != FORMAT_VERSION or meta.get("kind") not in kinds:
            raise ValueError(
                f"{meta_path}: got format_version={meta.get('format_version')!r} "
                f"kind={meta.get('kind')!r}, expected {FORMAT_VERSION} and {'|'.join(kinds)}"
            )
        return MODELS[meta["kind"]]._read(fs, root, meta)

    @staticmethod
    def _common(meta: dict[str, Any]) -> dict[str, Any]:
        """The base fields of a model from its ``model.json``."""
        return {
            "columns": list(meta["columns"]),
            "categories": {k: list(v) for k, v in meta["categories"].items()},
            "device": meta.get("device", "cpu"),
            "info": meta.get("info", {}),
        }


def _assign_score(part: pd.DataFrame, model: Model, score_col: str, raw: Any) -> pd.DataFrame:
    return part.assign(**{score_col: model.predict_partition(part, raw)})


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
