"""Drift applied to one customer block: a new fraud pattern, a client's shift, new label delays.

Called by the kernel on a block's rows (times in ms since the first day, customers as the block's
local indices) before they are sorted. Drift draws from the block's own drift stream
``default_rng([seed, 2, block])``, so the rows it does not touch are those of the same config
without drift.
"""

from __future__ import annotations

import numpy as np

from fraud_dask.data.synthetic.conf import Plan, Scenario
from fraud_dask.data.synthetic.kernel import (
    _DAY_MS,
    _FRAUD_DEVICE_BASE,
    _amounts,
    _popular_terminals,
    _random_ips,
    _World,
)

_BIG = (1.5, 4.0)  # a big genuine purchase's amount factor
_TRIP_DAYS = (3, 10)  # a trip's length in days (uniform)
_TRIP_HIGH_VALUE = 0.4  # share of a trip's purchases at high-value terminals

_TESTING_GAP_S = 25.0  # mean seconds between a card-testing run's payments


def apply_drift(
    plan: Plan,
    world: _World,
    block: int,
    rows: dict[str, np.ndarray],
    customers: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Return ``rows`` with the plan's client shift and new fraud pattern applied (in place).

    Parameters
    ----------
    plan : Plan
        The generation plan; ``plan.drift`` says what changes.
    world : _World
        The global tables.
    block : int
        The customer block (names the drift stream and the fraud devices).
    rows : dict of numpy arrays
        The block's unsorted rows (``ms``, ``customer``, ``card``, ``device_id``, ``ip``,
        ``terminal``, ``amount``, ``scenario``).
    customers : dict of numpy arrays
        The block's customers (``scale``, ``n_cards``).

    Returns
    -------
    dict of numpy arrays
    """
    rng = np.random.default_rng([plan.seed, 2, block])
    terminal_client = world.merchant_client[world.terminal_merchant]
    if plan.drift.shift is not None:
        _shift(plan, world, rng, rows, customers, terminal_client)
    if plan.drift.pattern is not None:
        _pattern(plan, world, rng, block, rows, customers, terminal_client)
    return rows


def _shift(
    plan: Plan,
    world: _World,
    rng: np.random.Generator,
    rows: dict[str, np.ndarray],
    customers: dict[str, np.ndarray],
    terminal_client: np.ndarray,
) -> None:
    assert plan.drift.shift is not None
    start, client, factor, category, share = plan.drift.shift
    ms = rows["ms"]
    at = (ms >= start) & (terminal_client[rows["terminal"]] == client)
    if category >= 0 and share > 0:
        pool = np.flatnonzero((terminal_client == client) & (world.terminal_category == category))
        move = np.flatnonzero(at & (rows["scenario"] == 0) & (rng.random(len(ms)) < share))
        if len(pool) and len(move):
            terminal = pool[rng.integers(0, len(pool), size=len(move))]
            scale = customers["scale"][rows["customer"][move]]
            rows["terminal"][move] = terminal
            rows["amount"][move] = _amounts(rng, world.terminal_category[terminal], scale)
            # a move onto a compromised terminal inside its window is that scenario's fraud
            hit = (ms[move] >= world.compromise_start_ms[terminal]) & (
                ms[move] < world.compromise_end_ms[terminal]
            )
            rows["scenario"][move] = np.where(hit, int(Scenario.compromised_terminal), 0)
    rows["amount"][at] *= factor


def _pattern(
    plan: Plan,
    world: _World,
    rng: np.random.Generator,
    block: int,
    rows: dict[str, np.ndarray],
    customers: dict[str, np.ndarray],
    terminal_client: np.ndarray,
) -> None:
    assert plan.drift.pattern is not None
    start, category, client, rate, per_incident, max_amount = plan.drift.pattern
    total_ms = plan.n_days * _DAY_MS
    ms = rows["ms"]
    in_pool = world.terminal_category == category
    if client >= 0:
        in_pool &= terminal_client == client
    pool = np.flatnonzero(in_pool)
    # the pattern's rows replace genuine rows of the same period: the count stays exact
    candidates = np.flatnonzero((ms >= start) & (rows["scenario"] == 0))
    if start >= total_ms or not len(pool) or len(candidates) < per_incident:
        return
    n_after = int((ms >= start).sum())
    n = min(int(rng.poisson(n_after * rate / per_incident)), len(candidates) // per_incident)
    if n == 0:
        return
    size = n * per_incident
    inc = np.repeat(np.arange(n), per_incident)
    gaps = rng.exponential(_TESTING_GAP_S * 1000.0, size=size)
    first = np.arange(n) * per_incident
    gaps[first] = 0.0
    cum = np.cumsum(gaps)
    offset = cum - cum[first][inc]
    span = offset[first + per_incident - 1]
    t0 = start + rng.random(n) * np.maximum(total_ms - start - span - 1.0, 0.0)
    victim = rng.integers(0, len(customers["scale"]), size=n)
    card = (rng.random(n) * customers["n_cards"][victim]).astype(np.int64)
    device = (
        _FRAUD_DEVICE_BASE + (block << 20) + (int(Scenario.emerging_pattern) << 16) + np.arange(n)
    )
    new = {
        "ms": np.minimum((t0[inc] + offset).astype(np.int64), total_ms - 1),
        "customer": victim[inc],
        "card": card[inc],
        "device_id": device[inc],
        "ip": _random_ips(rng, size),  # rotating proxies
        "terminal": pool[rng.integers(0, len(pool), size=n)][inc],  # one site per run
        "amount": rng.uniform(0.5, max_amount, size=size),
        "scenario": np.full(size, int(Scenario.emerging_pattern), dtype=np.int8),
    }
    replace = candidates[rng.choice(len(candidates), size=size, replace=False)]
    for key, values in new.items():
        rows[key][replace] = values


def label_delay_days(plan: Plan, ms: np.ndarray, is_fraud: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Label delay of each row in days: the base delays, changed from the drift's start on.

    Parameters
    ----------
    plan : Plan
    ms : numpy.ndarray
        Transaction times (ms since the first day).
    is_fraud : numpy.ndarray of bool
    z : numpy.ndarray
        One standard normal draw per fraud row (the log-normal delay's noise).

    Returns
    -------
    numpy.ndarray
        Days from transaction to label, per row.
    """
    median, sigma, lo, hi = plan.fraud_delay
    genuine = np.full(len(ms), plan.genuine_delay_days)
    fraud_median = np.full(len(z), median)
    if plan.drift.delay is not None:
        start, new_median, new_genuine = plan.drift.delay
        late = ms >= start
        fraud_median[late[is_fraud]] = new_median
        if new_genuine > 0:
            genuine[late] = new_genuine
    delay = genuine
    delay[is_fraud] = np.clip(fraud_median * np.exp(sigma * z), lo, hi)
    return delay


def apply_overlap(
    plan: Plan,
    world: _World,
    block: int,
    rows: dict[str, np.ndarray],
    customers: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Return ``rows`` with the plan's overlap applied (in place), from its own stream.

    Big genuine purchases first (a high-value terminal, the amount times U(1.5, 4)), then
    trips (genuine rows of a travelling customer moved to unfamiliar terminals, shifted hours
    and a hotel or roaming IP), then shared devices (whole stolen-card and account-takeover
    incidents moved onto the victim's usual device and home IP), then friendly fraud (genuine
    rows relabelled, scenario 6).
    """
    friendly, shared, big, travel = plan.overlap
    rng = np.random.default_rng([plan.seed, 3, block])
    genuine = np.flatnonzero(rows["scenario"] == 0)
    if big > 0 and len(genuine):
        pick = genuine[rng.random(len(genuine)) < big]
        pool = world.high_value_terminals
        terminal = pool[rng.integers(0, len(pool), size=len(pick))]
        scale = customers["scale"][rows["customer"][pick]]
        amount = _amounts(rng, world.terminal_category[terminal], scale)
        rows["terminal"][pick] = terminal
        rows["amount"][pick] = amount * rng.uniform(*_BIG, size=len(pick))
        ms = rows["ms"][pick]
        hit = (ms >= world.compromise_start_ms[terminal]) & (ms < world.compromise_end_ms[terminal])
        rows["scenario"][pick] = np.where(hit, int(Scenario.compromised_terminal), 0)
    if travel > 0:
        _travel(plan, world, rng, rows, customers["scale"], travel)
    if shared > 0:
        incident = np.isin(rows["scenario"], (Scenario.stolen_card, Scenario.account_takeover))
        devices = np.unique(rows["device_id"][incident])
        moved = devices[rng.random(len(devices)) < shared]
        at = np.flatnonzero(incident & np.isin(rows["device_id"], moved))
        victim = rows["customer"][at]
        rows["device_id"][at] = customers["customer_id"][victim] * 4  # the first, usual device
        rows["ip"][at] = customers["home_ip"][victim, 0]
    if friendly > 0:
        genuine = np.flatnonzero(rows["scenario"] == 0)
        n_fraud = int((rows["scenario"] > 0).sum())
        n = min(int(rng.poisson(friendly * n_fraud)), len(genuine))
        pick = genuine[rng.choice(len(genuine), size=n, replace=False)]
        rows["scenario"][pick] = int(Scenario.friendly_fraud)
    return rows


def _travel(
    plan: Plan,
    world: _World,
    rng: np.random.Generator,
    rows: dict[str, np.ndarray],
    scale: np.ndarray,
    share: float,
) -> None:
    """Trips: a travelling customer's genuine rows move to unfamiliar terminals and hours.

    Each customer takes a trip with probability ``share * n_days / E[days]`` (at most 1) of
    ``_TRIP_DAYS`` days, so about ``share`` of the genuine rows fall in trips (while a trip fits
    in the period). On a trip a purchase is at a popular terminal (a high-value one with
    probability ``_TRIP_HIGH_VALUE``), at an hour shifted by the trip's time zone, from the
    trip's hotel IP or a roaming one; the device stays the customer's own.
    """
    lo, hi = _TRIP_DAYS
    n_cust = len(scale)
    days = rng.integers(lo, hi + 1, size=n_cust)
    goes = rng.random(n_cust) < min(1.0, share * plan.n_days / ((lo + hi) / 2))
    first = rng.integers(0, np.maximum(plan.n_days - days, 0) + 1)
    hours = rng.integers(3, 11, size=n_cust) * rng.choice([-1, 1], size=n_cust)
    hotel = _random_ips(rng, n_cust)
    customer = rows["customer"]
    day = rows["ms"] // _DAY_MS
    away = np.flatnonzero(
        (rows["scenario"] == 0)
        & goes[customer]
        & (day >= first[customer])
        & (day < first[customer] + days[customer])
    )
    who = customer[away]
    n = len(away)
    terminal = _popular_terminals(world, rng, n)
    dear = rng.random(n) < _TRIP_HIGH_VALUE
    pool = world.high_value_terminals
    terminal[dear] = pool[rng.integers(0, len(pool), size=int(dear.sum()))]
    ms = np.clip(rows["ms"][away] + hours[who] * 3_600_000, 0, plan.n_days * _DAY_MS - 1)
    roaming = rng.random(n) < 0.3
    rows["terminal"][away] = terminal
    rows["ms"][away] = ms
    rows["ip"][away] = np.where(roaming, _random_ips(rng, n), hotel[who])
    rows["amount"][away] = _amounts(rng, world.terminal_category[terminal], scale[who])
    hit = (ms >= world.compromise_start_ms[terminal]) & (ms < world.compromise_end_ms[terminal])
    rows["scenario"][away] = np.where(hit, int(Scenario.compromised_terminal), 0)
