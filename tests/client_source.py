"""A client's own card source, unlike the synthetic default: its own column names, a local time
zone without offsets, a label delay of its own, and fraud that comes in bursts on compromised cards
(many high amounts in a few hours, mostly at night and online), as card data often does.

Shapes vary by argument (span, fraud rate, cards, whether it has a terminal column), so the
data-aware defaults are tested on sources other than the ones they were built on. Used by the
onboarding tests and ``scripts/bench-onboard``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

CATEGORIES = ["grocery_pos", "gas_transport", "home", "shopping_pos", "shopping_net", "misc_net"]
ONLINE = ["shopping_net", "misc_net"]

#: raw column -> canonical name: the data YAML's column mapping of this source
COLUMNS = {
    "TXN_REF": "tx_id",
    "EVENT_TIME": "ts",
    "CARD_REF": "card_id",
    "AMT": "amount",
    "SHOP": "merchant_id",
    "CATEGORY": "category",
    "FRAUD_FLAG": "is_fraud",
}


def make_client_source(
    *,
    days: int = 120,
    cards: int = 1500,
    tx_per_card_day: float = 0.6,
    fraud_rate: float = 0.008,
    seed: int = 0,
    start: str = "2024-03-01",
    terminals: bool = False,
) -> pd.DataFrame:
    """Rows of the source with its raw column names (``EVENT_TIME`` naive, Europe/Paris)."""
    rng = np.random.default_rng(seed)
    n = int(days * cards * tx_per_card_day)
    card = rng.integers(0, cards, n)
    t0 = pd.Timestamp(start)
    seconds = rng.uniform(0, days * 86400, n)
    # people shop by day: move most night-time purchases into the day
    hour = (seconds % 86400) / 3600
    night = (hour < 6) & (rng.uniform(size=n) < 0.85)
    seconds[night] += rng.uniform(8, 14, night.sum()) * 3600
    seconds = np.minimum(seconds, days * 86400 - 1)
    typical = rng.lognormal(3.5, 0.6, cards)  # each card's usual basket
    amount = np.round(typical[card] * rng.lognormal(0, 0.5, n), 2)
    home_cat = rng.integers(0, len(CATEGORIES), cards)
    cat = np.where(rng.uniform(size=n) < 0.6, home_cat[card], rng.integers(0, len(CATEGORIES), n))
    shop = rng.integers(0, 400, n)
    fraud = np.zeros(n, dtype=np.int8)

    # compromised cards: a burst of frauds within hours, high amounts, at night, online
    n_fraud = int(round(n * fraud_rate / (1 - fraud_rate)))
    bursts = []
    done = 0
    while done < n_fraud:
        size = min(int(rng.integers(3, 12)), n_fraud - done)
        c = int(rng.integers(0, cards))
        at = rng.uniform(0, days * 86400 - 2 * 86400)
        at = at - at % 86400 + rng.uniform(20, 28) * 3600  # late evening into the night
        offsets = np.sort(rng.uniform(0, rng.uniform(2, 10) * 3600, size))
        bursts.append(
            pd.DataFrame(
                {
                    "card": c,
                    "seconds": at + offsets,
                    "amount": np.round(typical[c] * rng.uniform(2.5, 9.0, size), 2),
                    "cat": rng.choice([CATEGORIES.index(x) for x in ONLINE], size),
                    "shop": rng.integers(0, 400, size),
                }
            )
        )
        done += size
    burst = pd.concat(bursts, ignore_index=True)
    burst["seconds"] = np.minimum(burst["seconds"], days * 86400 - 1)
    frame = pd.DataFrame(
        {
            "card": np.concatenate([card, burst["card"]]),
            "seconds": np.concatenate([seconds, burst["seconds"]]),
            "amount": np.concatenate([amount, burst["amount"]]),
            "cat": np.concatenate([cat, burst["cat"]]),
            "shop": np.concatenate([shop, burst["shop"]]),
            "fraud": np.concatenate([fraud, np.ones(len(burst), dtype=np.int8)]),
        }
    ).sort_values("seconds", kind="stable", ignore_index=True)
    out = pd.DataFrame(
        {
            "TXN_REF": [f"T{i:09d}" for i in rng.permutation(len(frame))],
            "EVENT_TIME": (t0 + pd.to_timedelta(frame["seconds"], unit="s")).dt.floor("s"),
            "CARD_REF": [f"C{c:06d}" for c in frame["card"]],
            "AMT": frame["amount"],
            "SHOP": [f"shop-{s:04d}" for s in frame["shop"]],
            "CATEGORY": [CATEGORIES[c] for c in frame["cat"]],
            "FRAUD_FLAG": frame["fraud"].astype("int8"),
        }
    )
    if terminals:
        out["TERMINAL"] = (frame["shop"] * 3 + rng.integers(0, 3, len(frame))).astype("int64")
    return out


def write_client_source(raw: pd.DataFrame, root: Path, *, files: int = 4) -> list[Path]:
    """Write the rows as ``files`` Parquet files in time order (a monthly export)."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, part in enumerate(np.array_split(np.arange(len(raw)), files)):
        path = root / f"export-{i:02d}.parquet"
        table = pa.Table.from_pandas(raw.iloc[part].reset_index(drop=True), preserve_index=False)
        pq.write_table(table, path)
        paths.append(path)
    return paths


def data_overrides(root: Path, *, terminals: bool = False, label_delay_days: int = 14) -> list:
    """The client's data YAML as Hydra overrides: a column mapping, a time zone, a delay."""
    mapping = COLUMNS | ({"TERMINAL": "terminal_id"} if terminals else {})
    cols = ",".join(f"{k}:{v}" for k, v in mapping.items())
    return [
        "data=parquet",
        "data.name=client_x",
        f"data.path={root}",
        f"++data.columns={{{cols}}}",
        "data.timestamp.timezone=Europe/Paris",
        f"data.label_delay_days={label_delay_days}",
    ]
