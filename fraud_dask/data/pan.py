"""Card numbers (PANs) replaced by a keyed hash, so they never reach features, outputs or logs.

A PAN is 13 to 19 digits (optionally grouped by spaces or dashes) that pass the Luhn check.
Each one is replaced by HMAC-SHA256 under a secret key: in string columns by ``tok_`` and 32 hex
digits (anywhere in the value, so free text is scrubbed too), in integer columns by a
non-negative int64, so a column keeps its dtype. The same PAN always gets the same token under
the same key, so tokens still join and aggregate.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_dask.errors import UserError

log = logging.getLogger(__name__)

PAN_PATTERN = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
# RE2 (pyarrow) has no look-arounds: a vectorised pre-filter that every PAN matches.
PAN_CANDIDATE = _CANDIDATE = r"\d[\d -]{11,}\d"
_INT_MIN, _INT_MAX = 10**12, 2**63 - 1
TOKEN_PREFIX = "tok_"


def luhn_valid(digits: str) -> bool:
    """Return True when ``digits`` (a string of decimal digits) passes the Luhn check.

    Parameters
    ----------
    digits : str
        Decimal digits only.

    Returns
    -------
    bool
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_pan(value: str) -> bool:
    """Return True when ``value`` is, as a whole, a PAN (13-19 digits, spaces/dashes allowed).

    Parameters
    ----------
    value : str
        A candidate card number.

    Returns
    -------
    bool
    """
    if not PAN_PATTERN.fullmatch(value):
        return False
    return luhn_valid(re.sub(r"[ -]", "", value))


class PanHasher:
    """Replaces PANs by HMAC-SHA256 tokens under a secret key; the key never shows in a repr.

    Parameters
    ----------
    key : str or None
        The secret. With None, finding a PAN raises instead of hashing it.
    """

    def __init__(self, key: str | None) -> None:
        self._key = None if key is None else key.encode("utf-8")

    def __repr__(self) -> str:
        return f"PanHasher(key={'<set>' if self._key else None})"

    def same_key(self, other: PanHasher) -> bool:
        """Whether ``other`` gives the same tokens (the same key, or both without one)."""
        if self._key is None or other._key is None:
            return self._key is other._key
        return hmac.compare_digest(self._key, other._key)

    def _digest(self, digits: str, where: str) -> bytes:
        if self._key is None:
            raise UserError(
                f"{where}: found card numbers (PANs) but no hash key is configured; set the "
                "environment variable named by data.pan.key_env (default FRAUD_DASK_PAN_KEY), "
                "data.pan.key_file or data.pan.key (or data.pan.create_key=true)"
            )
        return hmac.new(self._key, digits.encode("ascii"), hashlib.sha256).digest()

    def token(self, digits: str, where: str = "value") -> str:
        """Return the string token of a PAN given as digits only."""
        return TOKEN_PREFIX + self._digest(digits, where)[:16].hex()

    def int_token(self, digits: str, where: str = "value") -> int:
        """Return the non-negative int64 token of a PAN given as digits only."""
        return int.from_bytes(self._digest(digits, where)[:8], "big") >> 1

    def scrub(self, s: pd.Series, where: str = "column") -> tuple[pd.Series, int]:
        """Replace every PAN in a string or integer series.

        Parameters
        ----------
        s : pandas.Series
            Values to scrub: text, integers or a category (its categories are scrubbed); other
            dtypes are returned unchanged.
        where : str
            Names the file and column in the error raised when no key is set.

        Returns
        -------
        (pandas.Series, int)
            The scrubbed series (same dtype and index) and the number of values changed.
        """
        if isinstance(s.dtype, pd.CategoricalDtype):
            return self._scrub_categorical(s, where)
        if pd.api.types.is_integer_dtype(s.dtype):
            return self._scrub_int(s, where)
        if not (pd.api.types.is_string_dtype(s.dtype) or s.dtype == object):
            return s, 0
        text = s.astype(str) if s.dtype == object else s
        candidate = text.str.contains(_CANDIDATE, regex=True, na=False).to_numpy(dtype=bool)
        if not candidate.any():
            return s, 0

        def replace(match: re.Match[str]) -> str:
            digits = re.sub(r"[ -]", "", match.group(0))
            return self.token(digits, where) if luhn_valid(digits) else match.group(0)

        old = text[candidate]
        new = old.map(lambda v: PAN_PATTERN.sub(replace, v))
        changed = int((new != old).sum())
        if not changed:
            return s, 0
        out = s.copy()
        out[candidate] = new.to_numpy()
        return out, changed

    def _scrub_categorical(self, s: pd.Series, where: str) -> tuple[pd.Series, int]:
        """Scrub the categories (each distinct value once), then map the values onto them."""
        categories = pd.Series(s.cat.categories)
        if not (pd.api.types.is_string_dtype(categories.dtype) or categories.dtype == object):
            return s, 0
        new, changed = self.scrub(categories, where)
        if not changed:
            return s, 0
        codes = s.cat.codes.to_numpy()
        hit = np.flatnonzero((new != categories).to_numpy())
        # two spellings of one card number ("4111 1111 ...", "41111111...") share a token, so
        # the new categories may repeat: rebuild the column from its values
        values = np.where(codes >= 0, new.to_numpy(dtype=object)[codes], None)
        out = pd.Series(values, index=s.index, name=s.name).astype(new.dtype).astype("category")
        return out, int(np.isin(codes, hit).sum())

    def _scrub_int(self, s: pd.Series, where: str) -> tuple[pd.Series, int]:
        values = s.to_numpy(dtype=np.int64, na_value=-1) if s.hasnans else s.to_numpy()
        candidate = values >= _INT_MIN
        if not candidate.any():
            return s, 0
        out = values.copy()
        changed = 0
        for i in np.flatnonzero(candidate):
            digits = str(int(values[i]))
            if len(digits) <= 19 and luhn_valid(digits):
                out[i] = self.int_token(digits, where)
                changed += 1
        if not changed:
            return s, 0
        result = pd.Series(out, index=s.index, name=s.name).astype(s.dtype)
        if s.hasnans:
            result[s.isna()] = pd.NA
        return result, changed


def hasher_from_conf(pan_conf: Any) -> PanHasher:
    """Build the hasher from ``data.pan`` (key, or the environment variable it names).

    Parameters
    ----------
    pan_conf : PanConf
        ``key`` and ``key_env``.

    Returns
    -------
    PanHasher
        Without a key it still detects PANs and then raises a clear error.
    """
    key = pan_conf.key
    if not key and pan_conf.key_env:
        key = os.environ.get(pan_conf.key_env) or None
    key_file = getattr(pan_conf, "key_file", None)
    if not key and key_file:
        path = Path(os.path.expanduser(str(key_file)))
        if not path.is_file():
            raise UserError(f"data.pan.key_file: no such file {path}")
        key = (
            path.read_text(encoding="utf-8").strip().splitlines()[0] if path.stat().st_size else ""
        )
        if not key:
            raise UserError(f"data.pan.key_file: {path} is empty")
    if not key and getattr(pan_conf, "create_key", False):
        key = _home_key()
    return PanHasher(key)


def default_key_path() -> Path:
    """The data home's PAN key file (``$FRAUD_DASK_HOME/pan.key``)."""
    home = os.environ.get("FRAUD_DASK_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share", "fraud_dask"
    )
    return Path(home) / "pan.key"


def _home_key() -> str:
    """The data home's key, created at random (mode 0600) the first time it is needed.

    Tokens depend on the key: a model trained on tokens made under one key must be scored under
    the same key, so the file is never replaced (copy it, or set ``FRAUD_DASK_PAN_KEY``, on every
    machine that scores the same source).
    """
    path = default_key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another run created it first
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            log.info("card numbers: created a hash key in %s (keep it: tokens depend on it)", path)
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise UserError(f"the PAN hash key file {path} is empty; delete it or set a key")
    return key
