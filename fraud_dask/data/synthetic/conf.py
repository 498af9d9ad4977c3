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
    emerging_pattern = 5
    """Rows of :class:`NewPatternConf` (``data.synthetic.drift.new_pattern``); none by default."""
    friendly_fraud = 6
    """Genuine purchases labelled fraud (disputes; :class:`OverlapConf`); none by default."""


BASE_SCENARIOS = tuple(s for s in Scenario if s <= Scenario.account_takeover)
"""The scenarios every generated dataset holds (drift adds :attr:`Scenario.emerging_pattern`,
``overlap.friendly_fraud`` :attr:`Scenario.friendly_fraud`)."""


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
class NewPatternConf:
    """A fraud pattern that starts on ``start_date``: card testing at one merchant category.

    Bots test stolen cards with runs of ``rows_per_incident`` tiny payments (at most
    ``max_amount``) on one card within minutes, at terminals of ``category`` (of ``client``'s
    merchants only, when set). From ``start_date`` on they make up ``rate`` of the rows; they
    replace genuine rows of the same days, so the row count and every row before ``start_date``
    stay as without drift. Their ``scenario`` is 5 (``emerging_pattern``).
    """

    start_date: str | None = None
    """First day of the pattern (ISO date); null: no new pattern."""
    category: str = "pharmacy"
    """Merchant category attacked (one of ``CATEGORIES``)."""
    client: str | None = None
    """Only this client's merchants (``client_00`` ...); null: every client's."""
    rate: float = 0.002
    """Share of the rows from ``start_date`` on that are this pattern (0 < rate <= 0.2)."""
    rows_per_incident: int = 6
    """Payments per card-testing run."""
    max_amount: float = 5.0
    """Amounts are uniform in [0.5, max_amount]."""


@dataclass
class ClientShiftConf:
    """From ``start_date`` one client's transactions change: their amounts and category mix.

    Every amount at ``client``'s merchants is multiplied by ``amount_factor``; and
    ``category_share`` of its genuine transactions move to its merchants of ``category`` (when it
    has any; with amounts drawn for that category). Rows before ``start_date`` and other clients'
    rows are as without drift.
    """

    start_date: str | None = None
    """First day of the shift (ISO date); null: no shift."""
    client: str = "client_01"
    """The client whose transactions shift (``client_00`` ...)."""
    amount_factor: float = 1.0
    """Multiplies the client's amounts (1: unchanged)."""
    category: str | None = None
    """Category that gains a share of the client's genuine transactions; null: mix unchanged."""
    category_share: float = 0.0
    """Share of the client's genuine transactions moved to ``category`` (0 to 1)."""


@dataclass
class LabelDelayShiftConf:
    """From ``start_date`` labels arrive later (or sooner): new delays for rows from that day."""

    start_date: str | None = None
    """First transaction day with the new delays (ISO date); null: no change."""
    fraud_median_days: float = 30.0
    """New median chargeback delay of fraud rows (same log-sd and bounds as before)."""
    genuine_days: float | None = None
    """New fixed delay of genuine rows; null: unchanged."""


@dataclass
class DriftConf:
    """Changes from given dates, so monitoring and exploration have something to find.

    Every part is off (``start_date: null``) by default; drift draws from random streams of its
    own, so switching it on changes only the rows it is about.
    """

    new_pattern: NewPatternConf = field(default_factory=NewPatternConf)
    client_shift: ClientShiftConf = field(default_factory=ClientShiftConf)
    label_delay: LabelDelayShiftConf = field(default_factory=LabelDelayShiftConf)


@dataclass
class OverlapConf:
    """Genuine behaviour that looks like fraud, and fraud that looks genuine.

    Real card data is far less separable than the base scenarios alone; the defaults make the
    default pipeline land where real card data do (test AP 0.67 on the default 1,000,000 rows,
    0.49 on 300,000; figures and the effect of each knob in the :mod:`fraud_dask.data.synthetic`
    docstring). Each knob lowers what a
    model can reach (0 switches it off); all draw from a random stream of their own.
    """

    friendly_fraud: float = 0.2
    """Fraud labels on genuine purchases (disputes, "friendly fraud", scenario 6), per row of
    the other scenarios: behaviour no model can tell from genuine. ``fraud_rate`` stays the
    total: the other scenarios make up ``fraud_rate / (1 + friendly_fraud)`` of the rows."""
    shared_device: float = 0.5
    """Share of stolen-card and account-takeover incidents made from the victim's usual device
    and home IP (a relative, a shared computer) instead of a new device and IP."""
    big_genuine: float = 0.03
    """Share of genuine rows that are big purchases away from home: a high-value terminal
    (electronics, retail, travel, online) and the amount times U(1.5, 4)."""
    travel: float = 0.03
    """Share of genuine rows made on trips (about: trips of 3-10 days, up to one per customer):
    at unfamiliar, often dear terminals, at hours shifted by a time zone of 3-10 hours, from a
    hotel or roaming IP, on the customer's own device - what a stolen card looks like."""


@dataclass(frozen=True)
class DriftPlan:
    """Drift in the generator's units (ms since the first day; category and client codes)."""

    # (start_ms, category, client or -1, rate, rows_per_incident, max_amount)
    pattern: tuple[int, int, int, float, int, float] | None = None
    # (start_ms, client, amount_factor, category or -1, category_share)
    shift: tuple[int, int, float, int, float] | None = None
    # (start_ms, fraud_median_days, genuine_days or -1)
    delay: tuple[int, float, float] | None = None


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
    """Expected share of fraud rows, every scenario together (friendly fraud included;
    0 < rate <= 0.2)."""
    scenarios: ScenarioShares = field(default_factory=ScenarioShares)
    compromise_min_days: int = 14
    compromise_max_days: int = 42
    label_delay: LabelDelayConf = field(default_factory=LabelDelayConf)
    seed: int = 0
    customers_per_block: int = 500
    """Customers per random stream; changing it changes the data (partitioning does not)."""
    rows_per_partition: int = 250_000
    """Target rows per Dask partition (bounds memory); never changes the data."""
    drift: DriftConf = field(default_factory=DriftConf)
    """A new fraud pattern, a client's shift, a change of label delay, from given dates."""
    overlap: OverlapConf = field(default_factory=OverlapConf)
    """Genuine rows that look like fraud and fraud that looks genuine (0 switches one off)."""


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
    """Share of rows of the base scenarios (``fraud_rate / (1 + friendly_fraud)``)."""
    shares: tuple[float, float, float, float]
    compromise_days: tuple[int, int]
    fraud_delay: tuple[float, float, float, float]
    genuine_delay_days: float
    drift: DriftPlan = DriftPlan()
    # (friendly_fraud, shared_device, big_genuine, travel)
    overlap: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

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
    _check_drift(c, bad)
    o = c.overlap
    if not 0 <= o.friendly_fraud <= 2:
        raise bad("overlap.friendly_fraud", o.friendly_fraud, "a share in [0, 2]")
    for name in ("shared_device", "big_genuine"):
        if not 0 <= getattr(o, name) <= 1:
            raise bad(f"overlap.{name}", getattr(o, name), "a share in [0, 1]")
    if not 0 <= o.travel <= 0.5:
        raise bad("overlap.travel", o.travel, "a share in [0, 0.5]")


def _check_drift(c: SyntheticConf, bad: Any) -> None:
    clients = client_names(c.n_clients)
    for part in ("new_pattern", "client_shift", "label_delay"):
        start = getattr(c.drift, part).start_date
        if start is not None:
            try:
                dt.date.fromisoformat(str(start))
            except ValueError as exc:
                raise bad(
                    f"drift.{part}.start_date", start, "an ISO date such as 2025-02-01 or null"
                ) from exc
    p = c.drift.new_pattern
    if p.category not in CATEGORIES:
        raise bad("drift.new_pattern.category", p.category, f"one of {list(CATEGORIES)}")
    if p.client is not None and p.client not in clients:
        raise bad("drift.new_pattern.client", p.client, f"null or one of {clients}")
    if not 0 < p.rate <= 0.2:
        raise bad("drift.new_pattern.rate", p.rate, "a rate in (0, 0.2]")
    if p.rows_per_incident < 1:
        raise bad("drift.new_pattern.rows_per_incident", p.rows_per_incident, "at least 1")
    if not p.max_amount > 0.5:
        raise bad("drift.new_pattern.max_amount", p.max_amount, "a number above 0.5")
    s = c.drift.client_shift
    if s.start_date is not None and s.client not in clients:  # off: its client is not read
        raise bad("drift.client_shift.client", s.client, f"one of {clients}")
    if not s.amount_factor > 0:
        raise bad("drift.client_shift.amount_factor", s.amount_factor, "a positive number")
    if s.category is not None and s.category not in CATEGORIES:
        raise bad("drift.client_shift.category", s.category, f"null or one of {list(CATEGORIES)}")
    if not 0 <= s.category_share <= 1:
        raise bad("drift.client_shift.category_share", s.category_share, "a share in [0, 1]")
    d = c.drift.label_delay
    if not d.fraud_median_days > 0:
        raise bad("drift.label_delay.fraud_median_days", d.fraud_median_days, "a positive number")
    if d.genuine_days is not None and not d.genuine_days > 0:
        raise bad("drift.label_delay.genuine_days", d.genuine_days, "a positive number or null")


def _drift_plan(c: SyntheticConf, start: dt.datetime) -> DriftPlan:
    def start_ms(day: str) -> int:
        when = dt.datetime.combine(dt.date.fromisoformat(str(day)), dt.time(), dt.UTC)
        return max(0, int((when - start).total_seconds()) * 1000)

    clients = client_names(c.n_clients)
    p, s, d = c.drift.new_pattern, c.drift.client_shift, c.drift.label_delay
    return DriftPlan(
        pattern=None
        if p.start_date is None
        else (
            start_ms(p.start_date),
            CATEGORIES.index(p.category),
            -1 if p.client is None else clients.index(p.client),
            float(p.rate),
            int(p.rows_per_incident),
            float(p.max_amount),
        ),
        shift=None
        if s.start_date is None
        else (
            start_ms(s.start_date),
            clients.index(s.client),
            float(s.amount_factor),
            -1 if s.category is None else CATEGORIES.index(s.category),
            float(s.category_share),
        ),
        delay=None
        if d.start_date is None
        else (
            start_ms(d.start_date),
            float(d.fraud_median_days),
            -1.0 if d.genuine_days is None else float(d.genuine_days),
        ),
    )


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
        fraud_rate=float(c.fraud_rate) / (1.0 + float(c.overlap.friendly_fraud)),
        shares=tuple(s / sum(shares) for s in shares),  # type: ignore[arg-type]
        compromise_days=(c.compromise_min_days, c.compromise_max_days),
        fraud_delay=(d.fraud_median_days, d.fraud_sigma, d.fraud_min_days, d.fraud_max_days),
        genuine_delay_days=float(d.genuine_days),
        drift=_drift_plan(c, start),
        overlap=(
            float(c.overlap.friendly_fraud),
            float(c.overlap.shared_device),
            float(c.overlap.big_genuine),
            float(c.overlap.travel),
        ),
    )


def client_names(n_clients: int) -> list[str]:
    """The ``client_id`` categories of a generated dataset."""
    return [f"client_{i:02d}" for i in range(n_clients)]
