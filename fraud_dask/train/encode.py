"""Model matrices from canonical frames: one pure pandas function per partition.

Every model sees the same float32 matrix: numeric and boolean inputs as they are, categorical
inputs as codes into a fixed category list (unseen or missing values become NaN, which XGBoost
treats as missing). The same function builds the training matrix on the workers and scores a
single batch online.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def encode_partition(
    part: pd.DataFrame,
    columns: Sequence[str],
    categories: Mapping[str, Sequence[str]],
) -> pd.DataFrame:
    """The float32 model matrix of one partition.

    Parameters
    ----------
    part : pandas.DataFrame
        Rows holding at least ``columns``.
    columns : sequence of str
        Model inputs in model order.
    categories : mapping
        Column -> fixed category list (as strings) for the categorical inputs.

    Returns
    -------
    pandas.DataFrame
        ``columns`` as float32, same index as ``part``.
    """
    out = {}
    for col in columns:
        values = part[col]
        if col in categories:
            known = pd.Index([str(c) for c in categories[col]], dtype=object)
            as_text = values.astype("string").astype(object)
            codes = known.get_indexer(as_text).astype(np.float32)
            codes[codes < 0] = np.nan  # unseen or missing: XGBoost's missing value
            out[col] = codes
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
