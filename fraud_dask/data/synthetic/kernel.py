"""The vectorised generator behind :func:`fraud_dask.data.synthetic.generate`.

Each customer block draws from ``default_rng([seed, 1, block])``; the global tables (merchants,
terminals, compromise windows) from ``default_rng([seed, 0xC0FFEE])``, cached per process. A
partition concatenates whole blocks, so partitioning never changes the rows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraud_dask.data.schema import STRING_DTYPE, order_columns
from fraud_dask.data.synthetic.conf import (
    _ID_BITS,
    CATEGORIES,
    DriftPlan,
    Plan,
    Scenario,
    as_synthetic_conf,
    client_names,
    make_plan,
)

# share of merchants, median amount and log-sd of amounts, per category (CATEGORIES' order)
_CAT_SHARE = np.array([0.20, 0.08, 0.18, 0.15, 0.05, 0.04, 0.12, 0.06, 0.07, 0.05])
_CAT_MEDIAN = np.array([35.0, 45.0, 28.0, 60.0, 180.0, 320.0, 45.0, 22.0, 35.0, 12.0])
_CAT_SIGMA = np.array([0.6, 0.35, 0.6, 0.85, 0.9, 0.8, 0.95, 0.6, 0.7, 0.8])
_CNP = (CATEGORIES.index("online"), CATEGORIES.index("digital_goods"))
_HIGH_VALUE = tuple(CATEGORIES.index(c) for c in ("electronics", "retail", "travel", "online"))
# genuine activity by hour of day (UTC) and by weekday (Monday first)
_HOURLY = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.8, 4.5, 5.0, 5.6]
    + [6.4, 6.0, 5.5, 5.3, 5.6, 6.2, 6.6, 6.0, 5.0, 3.8, 2.6, 1.6]
)
_HOURLY_CDF = np.cumsum(_HOURLY) / _HOURLY.sum()
_WEEKLY = np.array([0.95, 0.95, 0.97, 1.0, 1.12, 1.15, 0.86])
_EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me", "mail.com")
_FAVOURITES = 12  # terminals a customer usually shops at
_DAY_MS = 86_400_000
_FRAUD_DEVICE_BASE = 1 << 50


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fixed pseudo-random bijection of uint64 (for ids and tokens)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def card_token(customer_id: np.ndarray, card: np.ndarray, seed: int) -> np.ndarray:
    """Opaque card id: a seed-keyed bijection of ``(customer, card)`` onto ``[0, 2**39)``.

    Tokens have at most 12 digits, so no token can pass for a 13-19 digit card number.
    """
    mask = np.uint64((1 << _ID_BITS) - 1)
    keys = _mix64(np.array([seed, seed + 1], dtype=np.uint64))
    mult, add = (keys[0] | np.uint64(1)) & mask, keys[1] & mask
    x = np.asarray(customer_id, dtype=np.uint64) * np.uint64(4) + np.asarray(card, np.uint64)
    with np.errstate(over="ignore"):
        return ((x * mult + add) & mask).astype(np.int64)


@dataclass(frozen=True, eq=False)
class _World:
    merchant_category: np.ndarray  # int8 per merchant
    merchant_client: np.ndarray  # int16 per merchant
    terminal_merchant: np.ndarray  # int64 per terminal
    terminal_category: np.ndarray  # int8 per terminal
    popularity_cdf: np.ndarray  # float per terminal
    cnp_terminals: np.ndarray  # online / digital goods terminals
    high_value_terminals: np.ndarray
    compromise_start_ms: np.ndarray  # per terminal, ms since start (0/0 = never)
    compromise_end_ms: np.ndarray


@functools.lru_cache(maxsize=4)
def _world(plan: Plan) -> _World:
    """The global tables: a pure function of the plan, cached per process."""
    rng = np.random.default_rng([plan.seed, 0xC0FFEE])
    n_t, n_m = plan.n_terminals, plan.n_merchants
    merchant_category = rng.choice(len(CATEGORIES), size=n_m, p=_CAT_SHARE).astype(np.int8)
    client_w = 1.0 / np.arange(1, plan.n_clients + 1)
    merchant_client = rng.choice(plan.n_clients, size=n_m, p=client_w / client_w.sum())
    terminal_merchant = np.concatenate(
        [np.arange(n_m), rng.integers(0, n_m, size=max(0, n_t - n_m))]
    )[rng.permutation(n_t)]
    terminal_category = merchant_category[terminal_merchant]
    popularity = rng.lognormal(0.0, 1.0, size=n_t)
    share = popularity / popularity.sum()

    def pool(categories: tuple[int, ...]) -> np.ndarray:
        found = np.flatnonzero(np.isin(terminal_category, categories))
        return found if len(found) else np.arange(n_t)

    # Compromised terminals: uniformly chosen, each once, until the expected number of genuine
    # transactions inside their windows reaches the scenario's share of the fraud rows.
    lo, hi = plan.compromise_days
    order = rng.permutation(n_t)
    days = np.minimum(rng.integers(lo, hi + 1, size=n_t), plan.n_days)
    first_day = rng.integers(0, plan.n_days - days + 1)
    target = plan.n_rows * plan.fraud_rate * plan.shares[Scenario.compromised_terminal - 1]
    genuine_per_day = plan.n_rows * (1 - plan.fraud_rate * (1 - plan.shares[0])) / plan.n_days
    expected = np.cumsum(genuine_per_day * share[order] * days)
    # the count whose expected total is nearest to the target
    n_comp = int(np.searchsorted(expected, target))
    if n_comp < n_t and expected[n_comp] - target < target - (
        expected[n_comp - 1] if n_comp else 0
    ):
        n_comp += 1
    at = np.arange(min(n_comp, n_t // 2))
    if n_comp == 0 and target > 0 and n_t > 1:
        # a small world still holds every scenario with a share: the one terminal whose
        # expected count is nearest to the target
        at = np.array([np.argmin(np.abs(genuine_per_day * share[order] * days - target))])
    start_ms = np.zeros(n_t, dtype=np.int64)
    end_ms = np.zeros(n_t, dtype=np.int64)
    chosen = order[at]
    start_ms[chosen] = first_day[at] * _DAY_MS
    end_ms[chosen] = (first_day[at] + days[at]) * _DAY_MS
    return _World(
        merchant_category=merchant_category,
        merchant_client=merchant_client.astype(np.int16),
        terminal_merchant=terminal_merchant.astype(np.int64),
        terminal_category=terminal_category,
        popularity_cdf=np.cumsum(share),
        cnp_terminals=pool(_CNP),
        high_value_terminals=pool(_HIGH_VALUE),
        compromise_start_ms=start_ms,
        compromise_end_ms=end_ms,
    )


# (scenario, rows per incident = base + Poisson(extra), mean gap between its rows in seconds)
_INCIDENTS = (
    (Scenario.stolen_card, 3, 4.0, 2400.0),
    (Scenario.card_testing, 8, 12.0, 25.0),
    (Scenario.account_takeover, 2, 2.0, 3 * 3600.0),
)
_COLUMNS = ("ms", "customer", "card", "device_id", "ip", "terminal", "amount", "scenario")


def _amounts(
    rng: np.random.Generator, category: np.ndarray, scale: np.ndarray | float
) -> np.ndarray:
    mu = np.log(_CAT_MEDIAN[category] * scale)
    return np.exp(mu + _CAT_SIGMA[category] * rng.standard_normal(len(category)))


def _random_ips(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(1 << 24, 223 << 24, size=n, dtype=np.int64)


def _fraud_rows(
    plan: Plan,
    world: _World,
    rng: np.random.Generator,
    block: int,
    quota: int,
    customers: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Rows added by the stolen-card, card-testing and account-takeover incidents of a block."""
    total_ms = plan.n_days * _DAY_MS
    n_cust = len(customers["scale"])
    out: list[dict[str, np.ndarray]] = []
    for scenario, base, extra, gap_s in _INCIDENTS:
        lam = quota * plan.fraud_rate * plan.shares[scenario - 1] / (base + extra)
        n = min(int(rng.poisson(lam)), 1 << 16)
        sizes = base + rng.poisson(extra, size=n)
        inc = np.repeat(np.arange(n), sizes)
        rows = len(inc)
        first = np.cumsum(sizes) - sizes
        gaps = rng.exponential(gap_s * 1000.0, size=rows)
        gaps[first] = 0.0
        cum = np.cumsum(gaps)
        offset = cum - cum[first][inc]
        span = cum[first + sizes - 1] - cum[first] if n else np.zeros(0)
        t0 = rng.random(n) * np.maximum(total_ms - span - 1.0, 0.0)
        victim = rng.integers(0, n_cust, size=n)
        card = (rng.random(n) * customers["n_cards"][victim]).astype(np.int64)
        # fraudsters' devices get ids of their own, unique per (block, scenario, incident)
        device = _FRAUD_DEVICE_BASE + (block << 20) + (int(scenario) << 16) + np.arange(n)
        if scenario == Scenario.stolen_card:
            pool = world.high_value_terminals
            terminal = pool[rng.integers(0, len(pool), size=rows)]
            boost = rng.uniform(1.2, 3.0, size=rows)
            amount = _amounts(rng, world.terminal_category[terminal], 1.0) * boost
            ip = _random_ips(rng, n)[inc]
        elif scenario == Scenario.card_testing:
            pool = world.cnp_terminals
            terminal = pool[rng.integers(0, len(pool), size=n)][inc]
            amount = rng.uniform(0.5, 4.0, size=rows)
            ip = _random_ips(rng, rows)  # rotating proxies
        else:
            pool = world.cnp_terminals
            terminal = pool[rng.integers(0, len(pool), size=rows)]
            boost = rng.uniform(1.5, 4.0, size=rows)
            scale = customers["scale"][victim][inc]
            amount = _amounts(rng, world.terminal_category[terminal], scale) * boost
            ip = _random_ips(rng, n)[inc]
        out.append(
            {
                "ms": (t0[inc] + offset).astype(np.int64),
                "customer": victim[inc],
                "card": card[inc],
                "device_id": device[inc],
                "ip": ip,
                "terminal": terminal,
                "amount": amount,
                "scenario": np.full(rows, int(scenario), dtype=np.int8),
            }
        )
    rows_all = {k: np.concatenate([o[k] for o in out]) for k in _COLUMNS}
    if len(rows_all["ms"]) > quota:  # only in tiny blocks: keep the row count exact
        rows_all = {k: v[:quota] for k, v in rows_all.items()}
    return rows_all


def _genuine_rows(
    plan: Plan,
    world: _World,
    rng: np.random.Generator,
    n_rows: int,
    c: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """``n_rows`` genuine transactions of a block's customers, over (customer, day) cells."""
    n_cust, n_days = len(c["rate"]), plan.n_days
    start_dow = (plan.start_ns // (_DAY_MS * 1_000_000) + 3) % 7  # 1970-01-01 was a Thursday
    weekly = _WEEKLY[(start_dow + np.arange(n_days)) % 7]
    weight = (c["rate"][:, None] * weekly[None, :]).ravel()
    counts = rng.multinomial(n_rows, weight / weight.sum())
    cell = np.repeat(np.arange(n_cust * n_days), counts)
    cust, day = np.divmod(cell, n_days)
    hour = np.minimum(np.searchsorted(_HOURLY_CDF, rng.random(n_rows), side="right"), 23)
    ms = day * _DAY_MS + hour * 3_600_000 + (rng.random(n_rows) * 3_600_000).astype(np.int64)
    card = ((c["n_cards"][cust] > 1) & (rng.random(n_rows) < 0.3)).astype(np.int64)
    # devices 1 and 2 (when the customer has them) come into use on their start day; the
    # newest active device is the usual one
    n_dev = c["n_devices"][cust]
    active = (
        1
        + ((n_dev > 1) & (day >= c["device_start"][cust, 0]))
        + ((n_dev > 2) & (day >= c["device_start"][cust, 1]))
    )
    u = rng.random(n_rows)
    k = np.where(u < 0.75, active - 1, ((u - 0.75) / 0.25 * active).astype(np.int64))
    k = np.minimum(k, active - 1)
    device = (c["customer_id"][cust] * 4 + k).astype(np.int64)
    mobile = rng.random(n_rows) < 0.2
    ip = np.where(mobile, _random_ips(rng, n_rows), c["home_ip"][cust, k])
    pick = (rng.random(n_rows) ** 2 * _FAVOURITES).astype(np.int64)
    terminal = c["favourites"][cust, pick]
    explore = np.flatnonzero(rng.random(n_rows) < 0.08)
    terminal[explore] = _popular_terminals(world, rng, len(explore))
    amount = _amounts(rng, world.terminal_category[terminal], c["scale"][cust])
    hit = (ms >= world.compromise_start_ms[terminal]) & (ms < world.compromise_end_ms[terminal])
    scenario = np.where(hit, int(Scenario.compromised_terminal), 0).astype(np.int8)
    return {
        "ms": ms,
        "customer": cust,
        "card": card,
        "device_id": device,
        "ip": ip,
        "terminal": terminal,
        "amount": amount,
        "scenario": scenario,
    }


def _popular_terminals(world: _World, rng: np.random.Generator, n: int) -> np.ndarray:
    idx = np.searchsorted(world.popularity_cdf, rng.random(n), side="right")
    return np.minimum(idx, len(world.popularity_cdf) - 1)


def _block(plan: Plan, block: int) -> dict[str, np.ndarray]:
    """All rows of one customer block, sorted by time, from the block's own random stream."""
    world = _world(plan)
    rng = np.random.default_rng([plan.seed, 1, block])
    first = block * plan.customers_per_block
    n_cust = min(plan.customers_per_block, plan.n_customers - first)
    quota = int(plan.block_quota(block))
    customers = {
        "customer_id": first + np.arange(n_cust, dtype=np.int64),
        "rate": rng.gamma(2.0, 0.5, size=n_cust),
        "scale": rng.lognormal(0.0, 0.35, size=n_cust),
        "n_cards": 1 + (rng.random(n_cust) < 0.35).astype(np.int64),
        "n_devices": 1 + (rng.random(n_cust) < 0.5) + (rng.random(n_cust) < 0.15),
        "device_start": np.sort(rng.uniform(0, plan.n_days, size=(n_cust, 2)), axis=1),
        "home_ip": _random_ips(rng, n_cust * 3).reshape(n_cust, 3),
        "favourites": _popular_terminals(world, rng, n_cust * _FAVOURITES).reshape(
            n_cust, _FAVOURITES
        ),
    }
    fraud = _fraud_rows(plan, world, rng, block, quota, customers)
    genuine = _genuine_rows(plan, world, rng, quota - len(fraud["ms"]), customers)
    rows = {k: np.concatenate([genuine[k], fraud[k]]) for k in _COLUMNS}
    # overlap is part of the stationary world; drift comes after it, so that rows before a
    # drift's start (and other clients' rows) are exactly those of the config without drift
    if any(plan.overlap):
        from fraud_dask.data.synthetic.drift import apply_overlap

        rows = apply_overlap(plan, world, block, rows, customers)
    if plan.drift != DriftPlan():
        from fraud_dask.data.synthetic.drift import apply_drift

        rows = apply_drift(plan, world, block, rows, customers)
    order = np.argsort(rows["ms"], kind="stable")
    rows = {k: v[order] for k, v in rows.items()}
    rows["customer"] = customers["customer_id"][rows["customer"]]
    rows["tx_id"] = plan.block_offset(block) + np.arange(quota, dtype=np.int64)
    is_fraud = rows["scenario"] > 0
    # one draw per row, so relabelling a row (friendly fraud) leaves the others' delays alone
    z = rng.standard_normal(quota)[is_fraud]
    if plan.drift.delay is None:
        median, sigma, lo, hi = plan.fraud_delay
        delay_days = np.full(quota, plan.genuine_delay_days)
        delay_days[is_fraud] = np.clip(median * np.exp(sigma * z), lo, hi)
    else:
        from fraud_dask.data.synthetic.drift import label_delay_days

        delay_days = label_delay_days(plan, rows["ms"], is_fraud, z)
    rows["label_ms"] = rows["ms"] + (delay_days * _DAY_MS).astype(np.int64)
    return rows


def _ip_strings(ip: np.ndarray) -> pd.api.extensions.ExtensionArray:
    octets = [
        pc.cast(pa.array(((ip >> s) & 255).astype(np.uint8)), pa.string()) for s in (24, 16, 8, 0)
    ]
    return pd.array(pc.binary_join_element_wise(*octets, "."), dtype=STRING_DTYPE)


def _emails(plan: Plan, customer: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """One e-mail per customer, a pure function of (seed, customer id)."""
    lo = int(customer.min()) if len(customer) else 0
    ids = np.arange(lo, int(customer.max()) + 1 if len(customer) else 0, dtype=np.uint64)
    token = _mix64(ids ^ _mix64(np.array([plan.seed + 7], dtype=np.uint64)))
    domains = (token % np.uint64(len(_EMAIL_DOMAINS))).astype(np.int64)
    table = pa.array(
        [f"u{int(t) >> 24:010x}@{_EMAIL_DOMAINS[d]}" for t, d in zip(token, domains, strict=True)],
        type=pa.string(),
    )
    return pd.array(table.take(pa.array(customer - lo)), dtype=STRING_DTYPE)


def _frame(plan: Plan, rows: dict[str, np.ndarray]) -> pd.DataFrame:
    world = _world(plan)
    merchant = world.terminal_merchant[rows["terminal"]]
    ts = (plan.start_ns + rows["ms"] * 1_000_000).view("datetime64[ns]")
    label_ts = (plan.start_ns + rows["label_ms"] * 1_000_000).view("datetime64[ns]")
    data = {
        "tx_id": rows["tx_id"],
        "ts": pd.DatetimeIndex(ts).tz_localize("UTC"),
        "card_id": card_token(rows["customer"], rows["card"], plan.seed),
        "amount": np.maximum(np.round(rows["amount"], 2), 0.01),
        "terminal_id": rows["terminal"].astype(np.int64),
        "merchant_id": merchant,
        "client_id": pd.Categorical.from_codes(
            world.merchant_client[merchant], categories=client_names(plan.n_clients)
        ),
        "customer_id": rows["customer"].astype(np.int64),
        "is_fraud": (rows["scenario"] > 0).astype(np.int8),
        "label_ts": pd.DatetimeIndex(label_ts).tz_localize("UTC"),
        "device_id": rows["device_id"].astype(np.int64),
        "ip": _ip_strings(rows["ip"]),
        "email": _emails(plan, rows["customer"]),
        "category": pd.Categorical.from_codes(
            world.terminal_category[rows["terminal"]], categories=list(CATEGORIES)
        ),
        "scenario": rows["scenario"].astype(np.int8),
    }
    df = pd.DataFrame(data)
    return df[order_columns(list(df.columns))]


def _partition(blocks: tuple[int, int], plan: Plan) -> pd.DataFrame:
    """One Dask partition: the blocks ``[start, stop)``, concatenated, sorted by ``ts``."""
    parts = [_block(plan, b) for b in range(*blocks)]
    rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((rows["tx_id"], rows["ms"]))
    return _frame(plan, {k: v[order] for k, v in rows.items()})


def meta_frame(plan: Plan | None = None) -> pd.DataFrame:
    """An empty frame with the generated columns and dtypes (the ``meta`` of :func:`generate`)."""
    n_clients = plan.n_clients if plan is not None else 1
    empty = {k: np.zeros(0, dtype=np.int64) for k in (*_COLUMNS, "tx_id", "label_ms")}
    empty["ip"] = np.zeros(0, dtype=np.uint32)
    probe = plan or make_plan({"n_rows": 1, "n_clients": n_clients})
    return _frame(probe, empty)


def generate(conf: Any, *, npartitions: int | None = None) -> Any:
    """Synthetic transactions as a lazy Dask frame.

    Parameters
    ----------
    conf : SyntheticConf, DictConfig or mapping
        The ``data.synthetic`` config.
    npartitions : int, optional
        Number of partitions; default ``ceil(rows / rows_per_partition)``. Capped at the number
        of customer blocks. It never changes the rows generated.

    Returns
    -------
    dask.dataframe.DataFrame
        Canonical columns (``tx_id`` ... ``label_ts``) plus ``device_id``, ``ip``, ``email``,
        ``category`` and the ground-truth ``scenario`` (int8, see :class:`Scenario`). Rows within
        a partition are sorted by ``ts``.
    """
    import dask
    import dask.dataframe as dd

    c = as_synthetic_conf(conf)
    plan = make_plan(c)
    if npartitions is None:
        npartitions = math.ceil(plan.n_rows / c.rows_per_partition)
    if npartitions < 1:
        raise ValueError(f"generate: npartitions must be >= 1, got {npartitions}")
    npartitions = min(npartitions, plan.n_blocks)
    edges = [plan.n_blocks * p // npartitions for p in range(npartitions + 1)]
    parts = list(zip(edges[:-1], edges[1:], strict=True))
    # Keep pandas' own ``str`` dtype (schema.STRING_DTYPE); Dask would otherwise convert the
    # string columns to ``string[pyarrow]`` with NA semantics.
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_map(
            _partition,
            parts,
            plan=plan,
            meta=meta_frame(plan),
            label="synthetic-transactions",
            enforce_metadata=False,
        )
