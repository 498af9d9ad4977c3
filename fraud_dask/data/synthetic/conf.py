"""Schema (``data.synthetic``) and the size plan of the synthetic transaction generator.

Imports no numpy, pandas or dask: ``fraud_dask.data.config`` and Hydra import it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fraud_dask.errors import UserError

_ID_BITS = 39  # card tokens stay below 2**39 (12 digits), so they can never look like a PAN


class Scenario(enum.IntEnum):
    """Ground-truth scenario codes of the ``scenario`` column."""

    genuine = 0
    compromised_terminal = 1
    stolen_card = 2
    card_testing = 3
    account_takeover = 4


CATEGORIES = (
    "grocery",
    "fuel",
    "restaurant",
    "retail",
    "electronics",
    "travel",
    "online",
    "pharmacy",
    "entertainment",
    "digital_goods",
)
"""Merchant categories (the ``category`` column's fixed category list)."""


@dataclass
class ScenarioShares:
    """Share of the fraud rows each scenario contributes (normalised to sum to 1)."""

    compromised_terminal: float = 0.3
    stolen_card: float = 0.3
    card_testing: float = 0.15
    account_takeover: float = 0.25


@dataclass
class LabelDelayConf:
    """When labels become known: ``label_ts = ts + delay``."""

    fraud_median_days: float = 10.0
    """Median chargeback delay of fraud rows (log-normal)."""
    fraud_sigma: float = 0.6
    """Log-sd of the fraud delay."""
    fraud_min_days: float = 1.0
    fraud_max_days: float = 90.0
    genuine_days: float = 7.0
    """Genuine rows count as known-genuine after this fixed delay."""


@dataclass
class SyntheticConf:
    """Schema of ``data.synthetic``: the synthetic transaction generator."""

    n_rows: int | None = 1_000_000
    """Exact number of rows; null: ``n_customers * n_days * tx_per_customer_day`` rows."""
    n_customers: int = 10_000
    """Customers when ``n_rows`` is null (otherwise derived from ``n_rows``)."""
    n_days: int = 90
    start_date: str = "2025-01-01"
    """First day (UTC, ISO date)."""
    n_clients: int = 5
    """Tenants (``client_id``); merchants belong to one client, client sizes are Zipf-like."""
    tx_per_customer_day: float = 1.2
    customers_per_terminal: float = 5.0
    terminals_per_merchant: float = 3.0
    fraud_rate: float = 0.007
    """Expected share of fraud rows (0 < rate <= 0.2)."""
    scenarios: ScenarioShares = field(default_factory=ScenarioShares)
    compromise_min_days: int = 14
    compromise_max_days: int = 42
    label_delay: LabelDelayConf = field(default_factory=LabelDelayConf)
    seed: int = 0
    customers_per_block: int = 500
    """Customers per random stream; changing it changes the data (partitioning does not)."""
    rows_per_partition: int = 250_000
    """Target rows per Dask partition (bounds memory); never changes the data."""


@dataclass(frozen=True)
class Plan:
    """Everything a partition needs, derived once from a :class:`SyntheticConf` (hashable)."""

    seed: int
    n_rows: int
    n_customers: int
    customers_per_block: int
    n_blocks: int
    n_days: int
    start_ns: int
    n_clients: int
    n_terminals: int
    n_merchants: int
    fraud_rate: float
    shares: tuple[float, float, float, float]
    compromise_days: tuple[int, int]
    fraud_delay: tuple[float, float, float, float]
    genuine_delay_days: float

    def block_quota(self, block: int) -> int:
        """Exact row count of ``block`` (rows spread evenly over blocks)."""
        base, extra = divmod(self.n_rows, self.n_blocks)
        return base + int(block < extra)

    def block_offset(self, block: int) -> int:
        """First ``tx_id`` of ``block``."""
        base, extra = divmod(self.n_rows, self.n_blocks)
        return int(block * base + min(block, extra))


def as_synthetic_conf(conf: Any) -> SyntheticConf:
    """Validate a generator config and fill in defaults.

    Parameters
    ----------
    conf : SyntheticConf, DictConfig or mapping
        The ``data.synthetic`` config.

    Returns
    -------
    SyntheticConf

    Raises
    ------
    UserError
        An unknown key, a value of the wrong type, or a value out of range (named); a
        ``ValueError``, so callers catching that still do.
    """
    if isinstance(conf, SyntheticConf):
        node = OmegaConf.structured(conf)
    else:
        if isinstance(conf, DictConfig):
            conf = OmegaConf.to_container(conf, resolve=True)
        if not isinstance(conf, dict):
            raise UserError(f"data.synthetic: expected a mapping, got {type(conf).__name__}")
        try:
            node = OmegaConf.merge(OmegaConf.structured(SyntheticConf), conf)
        except Exception as exc:  # omegaconf raises several types; re-raise one clear one
            raise UserError(f"data.synthetic: {exc}") from exc
    out = OmegaConf.to_object(node)
    assert isinstance(out, SyntheticConf)
    _check(out)
    return out


def _check(c: SyntheticConf) -> None:
    def bad(name: str, got: Any, expected: str) -> UserError:
        return UserError(f"data.synthetic.{name}: got {got!r}, expected {expected}")

    if c.n_rows is not None and c.n_rows < 1:
        raise bad("n_rows", c.n_rows, "a positive integer or null")
    for name in ("n_customers", "n_days", "n_clients", "customers_per_block", "rows_per_partition"):
        if getattr(c, name) < 1:
            raise bad(name, getattr(c, name), "a positive integer")
    for name in ("tx_per_customer_day", "customers_per_terminal", "terminals_per_merchant"):
        if not getattr(c, name) > 0:
            raise bad(name, getattr(c, name), "a positive number")
    if not 0 < c.fraud_rate <= 0.2:
        raise bad("fraud_rate", c.fraud_rate, "a rate in (0, 0.2]")
    shares = dataclasses.astuple(c.scenarios)
    if min(shares) < 0 or sum(shares) <= 0:
        raise bad("scenarios", dataclasses.asdict(c.scenarios), "shares >= 0, not all 0")
    if not 1 <= c.compromise_min_days <= c.compromise_max_days:
        raise bad(
            "compromise_min_days",
            (c.compromise_min_days, c.compromise_max_days),
            "1 <= compromise_min_days <= compromise_max_days",
        )
    d = c.label_delay
    if not 0 < d.fraud_min_days <= d.fraud_median_days <= d.fraud_max_days:
        raise bad(
            "label_delay",
            dataclasses.asdict(d),
            "0 < fraud_min_days <= fraud_median_days <= fraud_max_days",
        )
    if d.fraud_sigma < 0 or not d.genuine_days > 0:
        raise bad("label_delay", dataclasses.asdict(d), "fraud_sigma >= 0 and genuine_days > 0")
    try:
        dt.date.fromisoformat(str(c.start_date))
    except ValueError as exc:
        raise bad("start_date", c.start_date, "an ISO date such as 2025-01-01") from exc


def make_plan(conf: Any) -> Plan:
    """Derive the generation plan (sizes, streams, exact row counts) from a config.

    Parameters
    ----------
    conf : SyntheticConf, DictConfig or mapping
        The ``data.synthetic`` config.

    Returns
    -------
    Plan
    """
    c = as_synthetic_conf(conf)
    if c.n_rows is None:
        n_customers = c.n_customers
        n_rows = max(1, round(c.n_customers * c.n_days * c.tx_per_customer_day))
    else:
        n_rows = c.n_rows
        n_customers = max(1, round(c.n_rows / (c.n_days * c.tx_per_customer_day)))
    if n_customers >= 1 << (_ID_BITS - 2):
        raise UserError(
            f"data.synthetic: got {n_customers} customers, expected at most 2**37 "
            "(fewer n_rows or more days)"
        )
    n_terminals = max(10, round(n_customers / c.customers_per_terminal))
    shares = [float(s) for s in dataclasses.astuple(c.scenarios)]
    start = dt.datetime.combine(dt.date.fromisoformat(str(c.start_date)), dt.time(), dt.UTC)
    d = c.label_delay
    return Plan(
        seed=int(c.seed),
        n_rows=int(n_rows),
        n_customers=int(n_customers),
        customers_per_block=c.customers_per_block,
        n_blocks=math.ceil(n_customers / c.customers_per_block),
        n_days=c.n_days,
        start_ns=int(start.timestamp()) * 1_000_000_000,
        n_clients=c.n_clients,
        n_terminals=int(n_terminals),
        n_merchants=max(1, round(n_terminals / c.terminals_per_merchant)),
        fraud_rate=float(c.fraud_rate),
        shares=tuple(s / sum(shares) for s in shares),  # type: ignore[arg-type]
        compromise_days=(c.compromise_min_days, c.compromise_max_days),
        fraud_delay=(d.fraud_median_days, d.fraud_sigma, d.fraud_min_days, d.fraud_max_days),
        genuine_delay_days=float(d.genuine_days),
    )


def client_names(n_clients: int) -> list[str]:
    """The ``client_id`` categories of a generated dataset."""
    return [f"client_{i:02d}" for i in range(n_clients)]
