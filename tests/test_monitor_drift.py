"""task=monitor end to end: a model trained on the first weeks of a three-client source, then
monitored over both periods of a source where one client's amounts shift in the later weeks.

The alerts must name that client and the shifted input, and nothing else fires for the other
clients; the same source unshifted fires nothing. The features are the default set, whose
all-history encodings and label-fed inputs move by themselves on a young source. The shift is
made twice: by hand with pandas on the generated rows, and by the generator's own drift option
(``data.synthetic.drift.client_shift``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from browser import CHROMIUM, check_offline_page

pytestmark = pytest.mark.slow

GEN = [
    "data.synthetic.n_rows=60000",
    "data.synthetic.n_customers=900",
    "data.synthetic.n_days=84",
    "data.synthetic.n_clients=3",
    "data.synthetic.fraud_rate=0.02",
    "data.synthetic.customers_per_block=300",
    "data.synthetic.rows_per_partition=20000",
    # the default feature set: all-history encodings and label-fed risk inputs that keep moving
    # on a young source, the demanding case for false alarms
    "features=default",
]
FIT = [
    "model.num_boost_round=40",
    "model.early_stopping_rounds=10",
    "model.params.max_depth=4",
    "model.device=cpu",
    "model.baseline=false",
    "registry.name=fraud-watched",
]
TRAIN_END = pd.Timestamp("2025-02-26", tz="UTC")  # the model sees the first 8 weeks
SHIFT = "2025-03-03"  # client_01's amounts triple from this Monday on
DRIFTED = "client_01"


def _cfg(home: Path, run: Path, *extra: str):
    from fraud_dask.config import compose

    return compose([f"paths.data_home={home}", *GEN, *extra], run_dir=run)


@pytest.fixture(scope="module")
def world(client, tmp_path_factory):
    """The generated source, its first weeks as a training source, and the trained model."""
    from fraud_dask.tasks import generate, pipeline

    root = tmp_path_factory.mktemp("monitor_drift")
    home = root / "home"
    generate.run(_cfg(home, root / "g", "task=generate", f"data.path={root / 'full'}"), client)
    full = pd.read_parquet(root / "full")
    full = full.drop(columns=[c for c in ("day",) if c in full.columns])
    (root / "first").mkdir()
    full[full["ts"] < TRAIN_END].to_parquet(root / "first" / "part-0.parquet", index=False)
    (root / "unshifted").mkdir()
    full.to_parquet(root / "unshifted" / "part-0.parquet", index=False)
    out = pipeline.run(_cfg(home, root / "train", *FIT, f"data.path={root / 'first'}"), client)
    assert out["registry"]["version"] == 1
    return {"root": root, "home": home, "full": full}


def _monitor(world, client, path: Path, run: str, *extra: str):
    from fraud_dask.tasks import monitor

    cfg = _cfg(
        world["home"],
        world["root"] / run,
        "task=monitor",
        f"data.path={path}",
        "registry.name=fraud-watched",
        "monitor.start=2025-01-01",  # both periods: the training weeks and the later ones
        *extra,
    )
    return monitor.run(cfg, client)


def _check(out: dict) -> None:
    alerts = out["alerts"]
    assert alerts, "the shifted client raised no alert"
    for alert in alerts:
        assert alert["client_id"] == DRIFTED, alert
        assert alert["period"] >= SHIFT, alert
    shifted = {a["name"] for a in alerts if a["kind"] == "feature_drift"}
    assert "amount" in shifted
    # every alert is a JSON object with the documented keys
    for alert in alerts:
        assert {"kind", "name", "client_id", "period", "value", "threshold"} <= set(alert)
        json.dumps(alert)
    # the undrifted clients' drift stays under the rule on every whole period
    assert set(out["clients"]) == {"client_00", "client_01", "client_02"}


@pytest.fixture(scope="module")
def shifted_run(world, client):
    """task=monitor over the source whose client_01 amounts were tripled with pandas."""
    root, full = world["root"], world["full"]
    shifted = full.copy()
    at = shifted["client_id"].astype(str).eq(DRIFTED) & (
        shifted["ts"] >= pd.Timestamp(SHIFT, tz="UTC")
    )
    shifted.loc[at, "amount"] = shifted.loc[at, "amount"] * 3
    (root / "shifted").mkdir()
    shifted.to_parquet(root / "shifted" / "part-0.parquet", index=False)
    return _monitor(world, client, root / "shifted", "m1")


def test_an_undrifted_source_fires_nothing(world, client):
    out = _monitor(world, client, world["root"] / "unshifted", "m0")
    assert out["alerts"] == []
    measured = {r["client"] for r in out["drift"] if r["complete"] and r["rows"] >= 500}
    assert measured == {"client_00", "client_01", "client_02"}


def test_a_client_shifted_with_pandas_fires_for_that_client_only(shifted_run):
    _check(shifted_run)
    # the undrifted clients' periods were measured, not skipped
    measured = {r["client"] for r in shifted_run["drift"] if r["complete"] and r["rows"] >= 500}
    assert measured == {"client_00", "client_01", "client_02"}


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (apt-get install chromium)")
def test_monitor_html_renders_offline_in_a_browser(shifted_run, tmp_path):
    page = check_offline_page(
        Path(shifted_run["report"]), tmp_path / "monitor.png", min_plots=4, all_data=True
    )
    assert "Alerts (" in page.dom and "Drift heat map" in page.dom
    assert "feature_drift" in page.dom and DRIFTED in page.dom  # the fired alerts come first
    assert page.dom.index("Alerts (") < page.dom.index("Drift heat map")
    # thresholds read as short numbers, not as 16-digit floats
    alerts = page.dom[page.dom.index("Alerts (") : page.dom.index("Drift heat map")]
    assert not re.search(r"\d\.\d{8,}", alerts), alerts[:2000]


def test_the_generators_client_shift_fires_for_that_client_only(world, client):
    from fraud_dask.tasks import generate

    root = world["root"]
    drift = [
        f"data.synthetic.drift.client_shift.start_date={SHIFT}",
        f"data.synthetic.drift.client_shift.client={DRIFTED}",
        "data.synthetic.drift.client_shift.amount_factor=3.0",
    ]
    path = root / "generated_drift"
    generate.run(
        _cfg(world["home"], root / "g2", "task=generate", f"data.path={path}", *drift), client
    )
    out = _monitor(world, client, path, "m2", *drift)
    _check(out)
