"""Schema of the ``monitor`` config group (``task=monitor``); no dask import."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PeriodFreq(enum.StrEnum):
    """How ``task=monitor`` cuts time: one period per UTC day, or per week starting Monday."""

    day = "day"
    week = "week"


@dataclass
class MonitorConf:
    """Schema of the ``monitor`` config group: what ``task=monitor`` watches and its rules.

    The model is ``registry.version`` of ``registry.name`` (default: the champion), the source
    is ``data``. Every rule below fires only where the evidence is enough for it to mean
    something: a drift or alert-rate rule needs ``min_rows`` rows in the client-period and a
    sampling-noise p-value under ``p_value``; a performance rule needs a mature period with
    ``min_frauds`` labelled frauds and a drop beyond ``z`` standard errors (bootstrap).
    """

    # monitored period [start, end) (ISO dates, UTC); null start: the day after the bundle's
    # training period (or the data's first day); null end: up to the data's end
    start: str | None = None
    end: str | None = None
    # labels known by this date count (null: the newest transaction of the monitored period)
    report_date: str | None = None
    # one period per day or per week (Monday to Sunday, UTC)
    freq: PeriodFreq = PeriodFreq.week
    # quantile bins of each numeric input and of the score in the bundle's reference
    bins: int = 10
    # categorical inputs keep their most frequent categories, the rest count as "other"
    max_categories: int = 20
    # PSI rules: on the score, and on any input (population stability index, same bins)
    psi_score: float = 0.2
    psi_feature: float = 0.2
    # ... and above this many times the input's own week-to-week PSI in the training period
    stability_factor: float = 5.0
    # a score move fires score_drift only with an input of the same client and period drifting
    # too (feature_drift), unless its PSI reaches psi_score_alone: the score of a model fed by
    # growing histories and arriving labels moves by itself on a young source
    psi_score_alone: float = 1.0
    # inputs computed from labels (risk, target encoding) fire feature_drift too; off: measured
    # and shown, not alerted (they move as labels arrive and as fraud happens: performance and
    # task=explore watch that)
    alert_label_inputs: bool = False
    # inputs over the whole history (no window: all-history frequency and target encodings)
    # fire feature_drift too; off: measured and shown, not alerted (they grow with the source's
    # age, so against a fixed reference they drift forever)
    alert_growing_inputs: bool = False
    # proportions below this are raised to it inside the PSI's logarithm (empty bins)
    psi_epsilon: float = 1.0e-4
    # a drift or alert-rate rule needs this many rows in the client-period
    min_rows: int = 500
    # ... and a p-value below this that the difference is sampling noise (PSI: chi-square
    # approximation with the two sample sizes; alert rate: binomial test)
    p_value: float = 0.001
    # alert-rate rule: the rate at the bundle's decision threshold outside [low, high] x expected
    alert_rate_low: float = 0.5
    alert_rate_high: float = 2.0
    # ... with at least this many alerts expected in the client-period (alerts come in bursts
    # of one compromised card or terminal: a handful of expected alerts says nothing)
    min_expected_alerts: float = 30.0
    # performance rule: AP below the bundle's test AP by more than this (mature periods only)
    ap_drop: float = 0.1
    # ... with at least this many labelled frauds, and a drop beyond z bootstrap standard errors
    min_frauds: int = 50
    z: float = 3.0
    # bootstrap replicates of the AP's standard error (Poisson weights over the score table,
    # widened by the square root of the frauds per fraud card: a card's frauds are not
    # independent)
    n_boot: int = 100
    # a period is mature when its end plus data.label_delay_days is before the report date and
    # at most this share of its rows still waits for its label (label_ts after the report date)
    mature_max_pending: float = 0.01
    # false-positive rate of the recall-at-FPR figure, and the alert budget (share of rows) of
    # the precision and recall at budget figures
    max_fpr: float = 0.01
    budget: float = 0.01
    # write monitor.html into the run directory
    report: bool = True
    seed: int = 0


def check_monitor_conf(conf: MonitorConf) -> None:
    """Check the ``monitor`` values OmegaConf cannot express.

    Raises
    ------
    UserError
        A bound is out of range; the message names the key, the value and what is expected.
    """
    from fraud_dask.errors import UserError

    def bad(key: str, expected: str) -> UserError:
        return UserError(f"monitor.{key}: got {getattr(conf, key)!r}, expected {expected}")

    if conf.bins < 2:
        raise bad("bins", "at least 2")
    if conf.max_categories < 1:
        raise bad("max_categories", "at least 1")
    for key in (
        "psi_score",
        "psi_feature",
        "psi_score_alone",
        "psi_epsilon",
        "ap_drop",
        "z",
        "budget",
        "max_fpr",
    ):
        if not getattr(conf, key) > 0:
            raise bad(key, "a positive number")
    for key in ("p_value", "budget", "max_fpr", "mature_max_pending"):
        if not 0 <= getattr(conf, key) <= 1:
            raise bad(key, "a number in [0, 1]")
    if not 0 < conf.alert_rate_low <= 1 <= conf.alert_rate_high:
        raise UserError(
            f"monitor.alert_rate_low/high: got {conf.alert_rate_low!r}/{conf.alert_rate_high!r}, "
            "expected 0 < low <= 1 <= high"
        )
    for key in ("min_rows", "min_frauds", "n_boot", "min_expected_alerts", "stability_factor"):
        if getattr(conf, key) < 0:
            raise bad(key, "a number >= 0")
