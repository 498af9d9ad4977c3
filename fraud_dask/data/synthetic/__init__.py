"""Synthetic card transactions with ground-truth fraud scenarios, generated lazily on Dask.

The generator is built so that the same configuration gives the same rows whatever the cluster:

- Customers are cut into fixed *blocks* (``customers_per_block``); each block draws from its own
  random stream keyed by ``(seed, block)``, and its exact row count is fixed up front. A Dask
  partition is a run of whole blocks, so the number of partitions and workers changes nothing.
- Global tables (merchants, terminals, their categories and clients, which terminals are
  compromised and when) are a pure function of the seed, rebuilt once per worker process.
- Within a block everything is vectorised numpy; memory is bounded by ``rows_per_partition``.

Scenarios (the ``scenario`` column; never a model input):

0. genuine;
1. compromised terminal: every transaction at a terminal during its compromise window is fraud;
2. stolen card: a burst of higher-than-usual amounts at unfamiliar merchants within hours, from
   the thief's device and IP (or the victim's own, ``overlap.shared_device``);
3. card testing: many tiny amounts at one online merchant within minutes, from a bot device
   behind rotating IPs;
4. account takeover: a new device and IP (or the victim's own, ``overlap.shared_device``), then
   a few high amounts online over hours;
5. emerging pattern (only with ``drift.new_pattern``): card testing at one merchant category
   from a given date;
6. friendly fraud (``overlap.friendly_fraud``, on by default): a genuine purchase labelled fraud.

Labels arrive late: ``label_ts`` is ``ts`` plus a log-normal chargeback delay (days to weeks) for
fraud and a fixed maturity delay for genuine rows.

How separable the data are, and the knobs that set it (``overlap``, :class:`OverlapConf`). The
base scenarios alone are easy to tell from genuine rows once entity history is known: every fraud
comes from a device and IP the card never used, and genuine customers never go on a spending
spree (the default pipeline scored test AP 0.955, ROC AUC 0.9994 on them). By default genuine
behaviour overlaps the fraud and labels are noisy, as on real card data:

- ``friendly_fraud=0.2``: disputed genuine purchases labelled fraud (scenario 6), 0.2 per other
  fraud row, so a sixth of the fraud labels are behaviour no model can tell from genuine.
  ``fraud_rate`` stays the total: the other scenarios make up ``fraud_rate / 1.2`` of the rows.
- ``shared_device=0.5``: half the stolen-card and account-takeover incidents come from the
  victim's own usual device and home IP (a relative, a shared computer).
- ``big_genuine=0.03``: 3% of genuine rows are big purchases at high-value terminals.
- ``travel=0.03``: about 3% of genuine rows are made on trips (3-10 days): unfamiliar and often
  dear terminals, hours shifted by a time zone, a hotel or roaming IP, the customer's own device.

The default pipeline (``python -m fraud_dask``: features=default, XGBoost on the data-aware
folds) then scores test AP 0.67 ± 0.02 and ROC AUC 0.905 on the default 1,000,000 rows (seed 42,
three 7-day test folds; the logistic baseline AP 0.53), and AP 0.49 ± 0.01, ROC AUC 0.886 on
300,000 rows of another seed (``data.synthetic.n_rows=300000 seed=7``: two 14-day folds; the
baseline 0.37): less data, less to learn from (figures and commands in docs/benchmarks.md).

What moves it, measured by ``scripts/bench-overlap`` (the reference history features and
single-node XGBoost of ``tests/test_synthetic_separability.py``, scikit-learn's average precision
on a later period; 80,000 rows at a 2% fraud rate, seeds 11 and 5): the defaults give AP 0.54 /
0.62; every knob off 0.76 / 0.91; ``friendly_fraud=0`` 0.70 / 0.67 and ``friendly_fraud=0.5`` 0.50
/ 0.20 (the strongest knob: raise it to lower AP); ``shared_device=0`` 0.69 / 0.75 and
``shared_device=1`` 0.53 / 0.56; ``big_genuine`` and ``travel`` move it least (both 0: 0.64 / 0.64;
both 0.1: 0.54 / 0.61), since entity history still tells a slow trip on the customer's own device
from a thief's burst - they blur the raw columns (amount, category, hour, IP) more than the
history. Set every knob to 0 for the base scenarios alone (``data.synthetic.overlap`` in
configs/data/synthetic.yaml).

Drift (``drift``, :class:`DriftConf`; all off by default) makes monitoring and exploration
testable: from a given date, a new fraud pattern (``drift.new_pattern``: card testing at one
merchant category, optionally of one client), a shift of one client's amounts and category mix
(``drift.client_shift``), and new label delays (``drift.label_delay``). For example::

    python -m fraud_dask task=generate data.synthetic.drift.new_pattern.start_date=2025-03-01 \
        data.synthetic.drift.client_shift.start_date=2025-03-01 \
        data.synthetic.drift.client_shift.amount_factor=2.5
"""

from __future__ import annotations

from typing import Any

from fraud_dask.data.synthetic.conf import (
    BASE_SCENARIOS,
    CATEGORIES,
    ClientShiftConf,
    DriftConf,
    LabelDelayConf,
    LabelDelayShiftConf,
    NewPatternConf,
    OverlapConf,
    Plan,
    Scenario,
    ScenarioShares,
    SyntheticConf,
    as_synthetic_conf,
    client_names,
    make_plan,
)

__all__ = [
    "BASE_SCENARIOS",
    "CATEGORIES",
    "ClientShiftConf",
    "DriftConf",
    "LabelDelayConf",
    "LabelDelayShiftConf",
    "NewPatternConf",
    "OverlapConf",
    "Plan",
    "Scenario",
    "ScenarioShares",
    "SyntheticConf",
    "as_synthetic_conf",
    "card_token",
    "client_names",
    "generate",
    "make_plan",
    "meta_frame",
]

_KERNEL = ("generate", "meta_frame", "card_token")


def __getattr__(name: str) -> Any:
    # the generator needs numpy/pandas/dask; load it only when used, so config stays light
    if name in _KERNEL:
        from fraud_dask.data.synthetic import kernel

        return getattr(kernel, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
