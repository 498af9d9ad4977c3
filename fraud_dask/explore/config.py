"""Schema of the ``explore`` config group (``task=explore``); no dask import."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FraudUnit(enum.StrEnum):
    """What one fraud counts as in the tests: a row, or a card (a card's rows in one segment
    and window count once, so a burst of one incident is one piece of evidence, not many)."""

    rows = "rows"
    cards = "cards"


@dataclass
class ExploreConf:
    """Schema of the ``explore`` group: emerging risk by segment, and the champion's misses.

    The recent window is compared with the baseline window just before it, per segment of each
    segment column (see :data:`fraud_dask.explore.segments.SEGMENT_COLUMNS`): a one-sided exact
    test of a rise in the fraud rate beyond the source's overall change, with the
    Benjamini-Hochberg false-discovery rate over every segment tested.
    """

    # recent window [recent_start, recent_end) (ISO dates, UTC); null end: the data's end
    # (midnight after its last day); null start: recent_days before the end
    recent_start: str | None = None
    recent_end: str | None = None
    recent_days: int = 14
    # baseline window [baseline_start, recent_start); null start: baseline_days before it
    baseline_start: str | None = None
    baseline_days: int = 56
    # segment columns; null: every one of SEGMENT_COLUMNS the source has (hour_band is derived
    # from ts)
    columns: list[str] | None = None
    # a fraud is a row or a card (a card's frauds in one segment and window count once)
    unit: FraudUnit = FraudUnit.cards
    # segments with fewer frauds (both windows) are not tested: they could never be significant
    min_frauds: int = 3
    # false-discovery rate of the Benjamini-Hochberg procedure over all tested segments
    fdr: float = 0.05
    # rows of each table kept in metrics.json and explore.html
    top: int = 20
    # score the recent window with the registry model (registry.name, registry.version) and
    # rank segments by the fraud value it misses at score.threshold; skipped, with a note,
    # when the registry has no such model
    misses: bool = True
    # write explore.html into the run directory
    report: bool = True
