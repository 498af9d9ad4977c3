"""scripts/handbook-ceiling: which frauds no delayed label can reveal (hand-built terminal)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "handbook-ceiling"


def _load():
    loader = importlib.machinery.SourceFileLoader("handbook_ceiling", str(SCRIPT))
    spec = importlib.util.spec_from_loader("handbook_ceiling", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_hidden_frauds_are_the_first_delay_days_of_a_terminal_compromise():
    ceiling = _load()
    start = pd.Timestamp("2018-04-01 12:00")
    # Terminal 1: one transaction a day; compromised for 28 days from day 10 (scenario 2), then
    # again from day 80 after a clean spell. Terminal 2: a scenario-1 fraud on day 10 only.
    days = np.arange(120)
    fraud1 = ((days >= 10) & (days < 38)) | ((days >= 80) & (days < 108))
    raw = pd.DataFrame(
        {
            "TX_DATETIME": np.concatenate([start + pd.to_timedelta(days, "D")] * 2),
            "TERMINAL_ID": np.repeat([1, 2], len(days)),
            "TX_FRAUD": np.concatenate([fraud1, days == 10]).astype(int),
            "TX_FRAUD_SCENARIO": np.concatenate(
                [np.where(fraud1, 2, 0), np.where(days == 10, 1, 0)]
            ),
        }
    )
    hidden = ceiling.hidden_frauds(raw)
    got = set(raw.loc[hidden & (raw.TERMINAL_ID == 1), "TX_DATETIME"].sub(start).dt.days)
    # Labels arrive 7 days late: days 10..16 of the first compromise and 80..86 of the second
    # have no labelled fraud of their compromise yet; from day 17 the day-10 fraud is known.
    assert got == set(range(10, 17)) | set(range(80, 87))
    assert not hidden[raw.TERMINAL_ID == 2].any()  # scenario 1 is never hidden
    assert not hidden[raw.TX_FRAUD == 0].any()


def test_ordinary_card_frauds_are_stolen_card_amounts_within_the_cards_range():
    ceiling = _load()
    # Card 1: genuine amounts 40, 50, 60 (mean 50, std 10); its stolen-card frauds (scenario 3)
    # of 65 and 250 (5x 13 and 5x 50); a scenario-1 fraud of 240 on card 2, whose genuine
    # amounts are 10 and 20.
    raw = pd.DataFrame(
        {
            "CUSTOMER_ID": [1, 1, 1, 1, 1, 2, 2, 2],
            "TX_AMOUNT": [40.0, 50.0, 60.0, 65.0, 250.0, 10.0, 20.0, 240.0],
            "TX_FRAUD": [0, 0, 0, 1, 1, 0, 0, 1],
            "TX_FRAUD_SCENARIO": [0, 0, 0, 3, 3, 0, 0, 1],
        }
    )
    # within 2 std (<= 70): the 65 fraud only; within 1 std (<= 60): none; never a genuine
    # row nor another scenario, whatever its amount
    assert ceiling.ordinary_card_frauds(raw, 2).tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert not ceiling.ordinary_card_frauds(raw, 1).any()
    assert ceiling.ordinary_card_frauds(raw, 100).tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
