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

from fraud_dask.train.balance import balance, genuine_rate, sample_genuine
from fraud_dask.train.config import ModelConf, feature_columns
from fraud_dask.train.encode import encode_partition, matrix_meta
from fraud_dask.train.frame import label_counts
from fraud_dask.train.models.base import Model

log = logging.getLogger(__name__)

#: dask-ml ``LogisticRegression`` parameters read from ``params``.
_LR_KEYS = ("C", "solver", "max_iter", "tol", "penalty")


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
        that share so that scores stay probabilities of the whole population. ``local_rows``:
        when the rows fitted are at most this many, scikit-learn fits them in one worker task
        (:func:`_fit_local`; L2 penalty only) instead of dask-ml.
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
        local_rows = given.get("local_rows")
        rate, expected = 1.0, None
        started = time.perf_counter()
        if max_rows or local_rows:
            ((total, frauds),) = label_counts([train_frame], label)
            rate = genuine_rate(int(total), int(frauds), int(max_rows) if max_rows else None)
            expected = int(frauds) + (int(total) - int(frauds)) * rate
            if rate < 1.0:
                # case-control sampling: every fraud, a fixed share of the genuine rows; the
                # slopes are unbiased and the intercept is corrected by log(rate) below
                train_frame = train_frame[[*columns, label]].map_partitions(
                    sample_genuine,
                    label,
                    rate,
                    int(seed),
                    meta=train_frame[[*columns, label]]._meta,
                )
        penalty = str(lr_params.get("penalty", "l2"))
        if local_rows and expected is not None and expected <= int(local_rows) and penalty == "l2":
            return cls._fit_in_task(
                client,
                train_frame[[*columns, label]],
                columns,
                label,
                lr_params,
                given,
                rate=rate,
                seed=seed,
                started=started,
                dropped=sorted(categorical),
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
        solver_started = time.perf_counter()
        with pywarnings.catch_warnings():
            # dask-glm sets the deprecated `fuse_ave_width` config key on every fit: nothing a
            # user can act on
            pywarnings.filterwarnings(
                "ignore", message=".*fuse_ave_width.*", category=FutureWarning
            )
            est = LogisticRegression(random_state=seed, **lr_params).fit(z, y)
        seconds = time.perf_counter() - solver_started
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
            "solver": "dask-ml",
            "seconds": round(seconds, 2),
            "total_seconds": round(time.perf_counter() - started, 2),
        }
        log.info(
            "logistic baseline: %d rows, %d inputs, fitted in %.1f s", int(n), len(columns), seconds
        )
        return cls(columns, {}, "cpu", info, coef=coef)

    @classmethod
    def _fit_in_task(
        cls,
        client: Any,
        frame: Any,
        columns: list[str],
        label: str,
        lr_params: dict[str, Any],
        given: dict[str, Any],
        *,
        rate: float,
        seed: int,
        started: float,
        dropped: list[str],
    ) -> Self:
        """The same fit as scikit-learn's ``LogisticRegression`` (L-BFGS, L2) in one worker task
        on the rows gathered there: for rows that fit one worker, instead of dask-glm's L-BFGS,
        every iteration of which is a round of tasks through the scheduler."""
        import dask

        task = dask.delayed(_fit_local, pure=False)(
            frame.to_delayed(), columns, label, lr_params, given, int(seed)
        )
        out = client.compute(task).result()
        if not out["varying"]:
            raise ValueError(f"logistic baseline: every input is constant in training: {columns}")
        constant = np.asarray(out["constant"], dtype=bool)
        coef = {
            "mean": out["mean"],
            "scale": out["scale"],
            "intercept": out["intercept"] + float(np.log(rate)),
            "coef": out["coef"],  # in input order, zero for the constant inputs
        }
        info = {
            "rows": out["rows"],
            "frauds": out["frauds"],
            "params": out["params"],
            "dropped": dropped,
            "constant": [c for c, flat in zip(columns, constant, strict=True) if flat],
            "genuine_sampled": rate,
            "solver": "scikit-learn in one task",
            "iterations": out["iterations"],
            "seconds": out["seconds"],
            "total_seconds": round(time.perf_counter() - started, 2),
        }
        log.info(
            "logistic baseline: %d rows, %d inputs, fitted in one task in %.1f s",
            out["rows"],
            len(columns),
            out["seconds"],
        )
        return cls(columns, {}, "cpu", info, coef=coef)


def _fit_local(
    parts: list[pd.DataFrame],
    columns: list[str],
    label: str,
    lr_params: dict[str, Any],
    given: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Standardize and fit scikit-learn's L-BFGS logistic regression on the rows of ``parts``
    (in a worker). The objective is dask-glm's up to a constant factor (scikit-learn's loss is
    the mean over the rows, dask-glm's the sum): ``tol_per_row`` is scikit-learn's ``tol``, a
    ``tol`` given for dask-glm is divided by the rows."""
    from sklearn.linear_model import LogisticRegression

    frame = pd.concat(parts) if parts else pd.DataFrame(columns=[*columns, label])
    x = encode_partition(frame, columns, {}).astype(np.float64)
    y = frame[label].to_numpy(dtype=np.float64)
    n = len(y)
    mean = np.array(x.mean().fillna(0.0), dtype=np.float64)
    scale = np.array(x.std(ddof=0).fillna(0.0), dtype=np.float64)
    constant = scale == 0
    scale[constant] = 1.0
    keep = ~constant
    z = ((x.to_numpy() - mean) / scale)[:, keep]
    z[np.isnan(z)] = 0.0
    if "tol" in given:
        tol = float(given["tol"]) / max(n, 1)
    elif given.get("tol_per_row") is not None:
        tol = float(given["tol_per_row"])
    else:
        tol = 1e-4 / max(n, 1)  # dask-glm's default test on the summed loss
    params = {"C": float(lr_params["C"]), "max_iter": int(lr_params["max_iter"]), "tol": tol}
    full = np.zeros(len(columns))
    started = time.perf_counter()
    iterations = 0
    intercept = 0.0
    if keep.any():
        est = LogisticRegression(solver="lbfgs", random_state=seed, **params).fit(z, y)
        full[keep] = est.coef_.ravel()
        intercept = float(est.intercept_[0])
        iterations = int(np.max(est.n_iter_))
    return {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "constant": constant.tolist(),
        "varying": bool(keep.any()),
        "coef": full.tolist(),
        "intercept": intercept,
        "rows": n,
        "frauds": int((y == 1).sum()),
        "params": params | {"solver": "lbfgs"},
        "iterations": iterations,
        "seconds": round(time.perf_counter() - started, 2),
    }
