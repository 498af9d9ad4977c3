"""Model matrices from canonical frames: one pure pandas function per partition.

Every model sees the same float32 matrix: numeric and boolean inputs as they are, categorical
inputs as codes into a fixed category list (unseen or missing values become NaN, which XGBoost
treats as missing). :class:`Categories` holds that rule once: the same function builds the
training matrix on the workers and scores a batch, and the online scorer codes one event's
values with the same object.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


class Categories:
    """Fixed category lists and their codes: one rule for the training matrix and one event.

    A value's code is its position in the column's list, matched as text (``str``); a missing or
    unseen value has no code (NaN, XGBoost's missing value). :func:`encode_partition` encodes
    whole columns with it, the online scorer one event's value.

    Parameters
    ----------
    lists : mapping
        Column -> fixed category list (values compared as strings).
    """

    def __init__(self, lists: Mapping[str, Sequence[Any]]) -> None:
        self.lists = {c: [str(v) for v in vals] for c, vals in lists.items()}
        self._index = {c: pd.Index(vals, dtype=object) for c, vals in self.lists.items()}
        self._codes = {c: {v: float(i) for i, v in enumerate(x)} for c, x in self.lists.items()}

    def __contains__(self, column: object) -> bool:
        return column in self.lists

    def codes(self, column: str, values: pd.Series) -> np.ndarray:
        """The float32 codes of a column's values (NaN where missing or unseen)."""
        as_text = values.astype("string").astype(object)
        codes = self._index[column].get_indexer(as_text).astype(np.float32)
        codes[codes < 0] = np.nan
        return codes

    def code(self, column: str, value: Any) -> float:
        """The code of one value (NaN where missing or unseen)."""
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return math.nan
        return self._codes[column].get(str(value), math.nan)


def encode_partition(
    part: pd.DataFrame,
    columns: Sequence[str],
    categories: Mapping[str, Sequence[str]] | Categories,
) -> pd.DataFrame:
    """The float32 model matrix of one partition.

    Parameters
    ----------
    part : pandas.DataFrame
        Rows holding at least ``columns``.
    columns : sequence of str
        Model inputs in model order.
    categories : mapping or Categories
        Column -> fixed category list (as strings) for the categorical inputs.

    Returns
    -------
    pandas.DataFrame
        ``columns`` as float32, same index as ``part``.
    """
    cats = categories if isinstance(categories, Categories) else Categories(categories)
    out = {}
    for col in columns:
        values = part[col]
        if col in cats:
            out[col] = cats.codes(col, values)
        else:
            out[col] = pd.to_numeric(values, errors="raise").to_numpy(
                dtype=np.float32, na_value=np.nan
            )
    return pd.DataFrame(out, index=part.index, columns=list(columns))


def matrix_meta(columns: Sequence[str]) -> pd.DataFrame:
    """Empty frame with the dtypes :func:`encode_partition` returns (``meta=`` for Dask)."""
    return pd.DataFrame({c: pd.Series(dtype=np.float32) for c in columns})


def feature_types(columns: Sequence[str], categories: Mapping[str, Any]) -> list[str]:
    """XGBoost feature types: ``c`` for categorical inputs, ``q`` for the others."""
    return ["c" if c in categories else "q" for c in columns]


def learn_categories(
    frame: Any, columns: Sequence[str], fixed: Mapping[str, Sequence[Any]]
) -> dict:
    """Fixed category lists: the configured ones, else the sorted values of ``frame``.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame or pandas.DataFrame
        Training rows.
    columns : sequence of str
        Categorical inputs.
    fixed : mapping
        Configured lists (``model.categories``); they win over the data.

    Returns
    -------
    dict
        Column -> list of str, in one ``compute`` for every learned column.
    """
    import dask

    out = {c: [str(v) for v in fixed[c]] for c in columns if c in fixed}
    todo = [c for c in columns if c not in out]
    if todo:
        lazy = [frame[c].astype("string").dropna().drop_duplicates(split_out=1) for c in todo]
        found = dask.compute(*lazy)
        for col, values in zip(todo, found, strict=True):
            out[col] = sorted(str(v) for v in values)
    for col, values in out.items():
        if not values:
            raise ValueError(f"model.categorical: column {col!r} has no category in training")
    return out
