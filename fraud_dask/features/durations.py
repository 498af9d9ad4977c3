"""Durations of feature windows: ``"15m"``, ``"1h"``, ``"30d"`` or unbounded, in nanoseconds.

A light module (no numpy): the config schema and every feature kind parse windows with it.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
NS = 1_000_000_000


def parse_window(text: str | None, what: str = "window") -> int | None:
    """Parse a duration such as ``"1s"``, ``"15m"``, ``"1h"`` or ``"90d"`` into nanoseconds.

    Parameters
    ----------
    text : str or None
        The duration; None (or ``"all"``) means unbounded and returns None.
    what : str
        Named in the error message.

    Returns
    -------
    int or None
        The duration in nanoseconds, or None for an unbounded window.

    Raises
    ------
    ValueError
        The text is not ``<positive integer><s|m|h|d>``.
    """
    if text is None or str(text).strip().lower() in ("all", "inf", "none"):
        return None
    match = _WINDOW_RE.match(str(text))
    if not match or int(match.group(1)) <= 0:
        raise ValueError(
            f"features: {what} {text!r} is not a duration; expected a positive integer "
            "followed by s, m, h or d (e.g. '1h', '30d')"
        )
    return int(match.group(1)) * _UNITS[match.group(2)] * NS


def window_label(text: str | None) -> str:
    """The ``{window}`` name field: the window as written, ``all`` for an unbounded one."""
    return "all" if parse_window(text) is None else str(text).strip()


def window_days(text: str | None) -> str:
    """The ``{days}`` name field: the window in whole days (error if it is not whole days)."""
    ns = parse_window(text)
    if ns is None or ns % (86400 * NS):
        raise ValueError(
            f"features: the name field {{days}} needs a whole-day window, got {text!r}"
        )
    return str(ns // (86400 * NS))


def duration_text(ns: int | None) -> str:
    """A duration in the largest whole unit (``"7d"``, ``"90m"``), ``"all history"`` if None."""
    if ns is None:
        return "all history"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if ns % (size * NS) == 0:
            return f"{ns // (size * NS)}{unit}"
    return f"{ns // NS}s"
