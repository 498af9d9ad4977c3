"""The logistic baseline: dask-ml ``LogisticRegression`` on standardized numeric inputs.

Categorical inputs are left out (the model is linear in the numeric inputs); a missing value
counts as the training mean. Contributions are ``coef * standardized input``. The model is saved
as JSON coefficients (``coefficients.json``).
"""

from __future__ import annotations

import json
import logging
import time
import warnings as pywarnings
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from fraud_dask.train.balance import balance
from fraud_dask.train.config import ModelConf, feature_columns
from fraud_dask.train.encode import encode_partition, matrix_meta
from fraud_dask.train.models.base import Model

log = logging.getLogger(__name__)

#: dask-ml ``LogisticRegression`` parameters read from ``params``.
_LR_KEYS = ("C", "solver", "max_iter", "tol", "penalty")


def _sample_genuine(
    part: pd.DataFrame, label: str, rate: float, seed: int, partition_info: dict | None = None
) -> pd.DataFrame:
    """Every fraud of ``part`` and each genuine row with probability ``rate`` (seeded by the
    partition number, so a rerun draws the same rows)."""
    number = (partition_info or {}).get("number", 0)
    draw = np.random.default_rng([seed, number]).random(len(part))
    keep = (part[label].to_numpy() == 1) | (draw < rate)
    return part[keep]


@dataclass
class LogisticModel(Model):
    """Standardization and logistic coefficients.

    Attributes
    ----------
    coef : dict or None
        ``mean``, ``scale``, ``coef`` (per input, in input order) and ``intercept``.
    """

    kind: ClassVar[str] = "logistic"

    coef: dict[str, Any] | None = None

    def _z(self, matrix: np.ndarray | pd.DataFrame) -> np.ndarray:
        """The standardized inputs; a missing input counts as the training mean (0)."""
        coef = self._coef()
        x = np.asarray(matrix, dtype=np.float64)
        z = (x - np.asarray(coef["mean"])) / np.asarray(coef["scale"])
        z[np.isnan(z)] = 0.0
        return z

    def _coef(self) -> dict[str, Any]:
        if self.coef is None:
            raise ValueError("logistic model has no coefficients")
        return self.coef

    def predict_matrix(
        self, matrix: np.ndarray | pd.DataFrame, raw: bytes | None = None
    ) -> np.ndarray:
        coef = self._coef()
        logit = self._z(matrix) @ np.asarray(coef["coef"]) + float(coef["intercept"])
        return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)

    def contributions(self, matrix: np.ndarray, raw: bytes | None = None) -> np.ndarray:
        """``coef * z`` per input."""
        return self._z(matrix) * np.asarray(self._coef()["coef"])

    def feature_importance(self, kind: str = "gain") -> dict[str, float]:
        """|coef| of each standardized input (``kind`` is ignored)."""
        coef = self._coef()["coef"]
        return {c: abs(float(v)) for c, v in zip(self.columns, coef, strict=True)}

    def _state(self) -> dict[str, Any]:
        # model.json has always carried the key; a linear model has no rounds
        return {"best_iteration": None}

    def _write(self, fs: Any, root: str) -> str:
        target = f"{root}/coefficients.json"
        with fs.open(target, "w") as fh:
            json.dump({"columns": self.columns, **(self.coef or {})}, fh, indent=2)
        return target

    @classmethod
    def _read(cls, fs: Any, root: str, meta: dict[str, Any]) -> Self:
        with fs.open(f"{root}/coefficients.json", "r") as fh:
            coef = json.load(fh)
        coef.pop("columns", None)
        return cls(**cls._common(meta), coef=coef)

    @classmethod
    def fit(
        cls,
        client: Any,
        train_frame: Any,
        valid_frame: Any | None,
        conf: ModelConf,
        device: str = "cpu",
        *,
        label: str = "is_fraud",
        seed: int = 0,
    ) -> Self:
        """Fit with dask-ml on the CPU; ``valid_frame`` (no early stopping) joins the training rows.

        ``C``, ``solver``, ``max_iter``, ``penalty`` and ``tol`` come from ``params``. dask-glm's
        L-BFGS stops when every component of the gradient of the loss summed over the rows is
        below ``tol`` (default 1e-4: far stricter than scikit-learn's, whose loss is a mean);
        ``tol_per_row`` instead sets ``tol`` to ``tol_per_row * rows``, scikit-learn's test.
        ``max_rows``: above it, every fraud and a fixed share of the genuine rows are fitted (the
        solver passes over the rows on every iteration), the intercept corrected by the log of
        that share so that scores stay probabilities of the whole population.
        """
        import dask
        from dask_ml.linear_model import LogisticRegression

        if valid_frame is not None:
            import dask.dataframe as dd

            train_frame = dd.concat([train_frame, valid_frame])
        categorical = set(conf.categorical)
        columns = [
            c for c in feature_columns(train_frame.dtypes, conf, label) if c not in categorical
        ]
        given = dict(conf.params)
        lr_params = {"C": 1.0, "solver": "lbfgs", "max_iter": 200} | {
            k: v for k, v in given.items() if k in _LR_KEYS
        }
        tol_per_row = given.get("tol_per_row")
        if tol_per_row is not None and "tol" in given:
            raise ValueError(
                f"logistic baseline: got tol={given['tol']!r} and tol_per_row={tol_per_row!r}; "
                "give one of them"
            )
        max_rows = given.get("max_rows")
        rate = 1.0
        if max_rows:
            total, frauds = dask.compute(train_frame[label].count(), train_frame[label].sum())
            if int(total) > int(max_rows) and int(total) > int(frauds):
                # case-control sampling: every fraud, a fixed share of the genuine rows; the
                # slopes are unbiased and the intercept is corrected by log(rate) below
                rate = max(0.0, (int(max_rows) - int(frauds))) / (int(total) - int(frauds))
                rate = min(1.0, max(rate, 1e-6))
                train_frame = train_frame[[*columns, label]].map_partitions(
                    _sample_genuine,
                    label,
                    rate,
                    int(seed),
                    meta=train_frame[[*columns, label]]._meta,
                )
        part, sizes = balance(client, train_frame[[*columns, label]], 1)
        x = part.map_partitions(encode_partition, columns, {}, meta=matrix_meta(columns))
        mean, std, n, pos = dask.compute(
            x.mean(), x.std(ddof=0), part[label].count(), part[label].sum()
        )
        if tol_per_row is not None:
            # dask-glm sums the loss over the rows, so its gradient test scales with them;
            # scikit-learn's tol applies to the mean loss: the same test is tol_per_row * rows.
            lr_params["tol"] = float(tol_per_row) * int(n)
        mean = np.array(mean.fillna(0.0), dtype=np.float64)
        scale = np.array(std.fillna(0.0), dtype=np.float64)
        constant = scale == 0
        scale[constant] = 1.0
        # Inputs constant over the training period carry no signal (and dask-glm rejects more
        # than one constant column): fit on the others, give them a zero coefficient.
        varying = [c for c, flat in zip(columns, constant, strict=True) if not flat]
        if not varying:
            raise ValueError(f"logistic baseline: every input is constant in training: {columns}")
        keep = ~constant
        z = x.map_partitions(
            lambda p: ((p - mean) / scale).fillna(0.0).astype("float64").loc[:, keep],
            meta=pd.DataFrame({c: pd.Series(dtype="float64") for c in varying}),
        ).to_dask_array(lengths=sizes)
        y = part[label].astype("float64").to_dask_array(lengths=sizes)
        # the solver passes over the matrix once per iteration: hold it in worker memory
        z, y = dask.persist(z, y)
        started = time.perf_counter()
        with pywarnings.catch_warnings():
            # dask-glm sets the deprecated `fuse_ave_width` config key on every fit: nothing a
            # user can act on
            pywarnings.filterwarnings(
                "ignore", message=".*fuse_ave_width.*", category=FutureWarning
            )
            est = LogisticRegression(random_state=seed, **lr_params).fit(z, y)
        seconds = time.perf_counter() - started
        full = np.zeros(len(columns))
        full[keep] = np.asarray(est.coef_, dtype=float).ravel()
        coef = {
            "mean": mean.tolist(),
            "scale": scale.tolist(),
            "intercept": float(np.ravel(est.intercept_)[0]) + float(np.log(rate)),
            "coef": full.tolist(),  # in input order, zero for the constant inputs
        }
        info = {
            "rows": int(n),
            "frauds": int(pos),
            "params": lr_params,
            "dropped": sorted(categorical),
            "constant": [c for c, flat in zip(columns, constant, strict=True) if flat],
            "genuine_sampled": rate,
            "seconds": round(seconds, 2),
        }
        log.info(
            "logistic baseline: %d rows, %d inputs, fitted in %.1f s", int(n), len(columns), seconds
        )
        return cls(columns, {}, "cpu", info, coef=coef)
