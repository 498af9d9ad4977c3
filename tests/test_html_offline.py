"""Every HTML output of fraud_dask, opened offline in a real headless Chromium (issue 14).

Each page is generated once per module on a small real world (synthetic Parquet, two registered
XGBoost models; ``scoring_world``) by the code that writes it for users:

- ``report.html``, the evaluation report (:func:`fraud_dask.report.write_report` on
  :func:`fraud_dask.metrics.evaluate` of both models' batch scores);
- ``onboard.html`` (:func:`fraud_dask.onboard.report.write_onboard_report` on the source's real
  profile);
- compare's ``report.html`` and the Dask performance report ``dask-report.html``, both from one
  ``task=compare`` run through the CLI's own :func:`fraud_dask.__main__.execute`, attached to the
  test cluster (``cluster=existing``);
- ``explore.html`` from ``task=explore`` the same way.

``monitor.html`` and ``tune.html`` are opened the same way by their own tests
(``test_monitor_drift.py``, ``test_tune.py``), which build the worlds they need.

Each is opened once with the network cut off (:func:`browser.check_offline_page`): nothing loaded
from outside the file, no script error, BokehJS done, each plot drew data, a screenshot under
the test's tmp dir.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from browser import CHROMIUM, check_offline_page, external_references, open_page
from omegaconf import OmegaConf
from scoring_world import build_world

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs a headless Chromium (apt-get install chromium)"
)


#: the replay period's start: frauds enough for every metric and interval
REPLAY = pd.Timestamp("2025-01-10", tz="UTC")


@pytest.fixture(scope="module")
def world(client, tmp_path_factory):
    return build_world(client, tmp_path_factory.mktemp("html-world"))


@pytest.fixture(scope="module")
def pages(world, client, cluster, tmp_path_factory) -> dict[str, Path]:
    """Each HTML output, written once: name -> path."""
    import dask

    from fraud_dask.__main__ import execute
    from fraud_dask.config import compose
    from fraud_dask.data.load import open_source
    from fraud_dask.metrics import evaluate
    from fraud_dask.onboard.profile import profile_source
    from fraud_dask.onboard.report import write_onboard_report
    from fraud_dask.registry import Registry
    from fraud_dask.report import write_report
    from fraud_dask.score.batch import score_period

    out: dict[str, Path] = {}
    tmp = tmp_path_factory.mktemp("html")

    # the evaluation report of both registered models on the world's last days
    reg = Registry(world.registry)
    bundles = [reg.load("fraud", v) for v in (1, 2)]
    scored = dask.compute(*(score_period(world.data, b, REPLAY, top=0)[0] for b in bundles))
    evaluations = {
        f"xgboost v{b.version}": {"replay": evaluate(s)}
        for b, s in zip(bundles, scored, strict=True)
    }
    out["report.html"] = write_report(
        tmp / "evaluate",
        evaluations,
        importance=bundles[0].model.feature_importance(),
        title="fraud_dask: xgboost on synthetic",
        notes=[f"two registered versions replayed from {REPLAY.date()}"],
    )

    # the onboarding report of the world's source
    profile = profile_source(open_source(world.data), client=client)
    out["onboard.html"] = write_onboard_report(tmp / "onboard", profile=profile)

    # task=compare through the CLI's entry point: compare's report.html and dask-report.html
    synthetic = OmegaConf.to_container(world.data.synthetic)
    overrides = [
        "task=compare",
        "cluster=existing",
        f"cluster.address={cluster.scheduler_address}",
        f"data.path={world.data.path}",
        *(f"data.synthetic.{k}={v}" for k, v in synthetic.items()),
        f"registry.path={world.registry}",
        "registry.name=fraud",
        "compare.challenger=2",
        f"compare.start={REPLAY.date()}",
        "compare.n_boot=30",
        "compare.k=20",
    ]
    run_dir = tmp / "compare"
    result = execute(compose(overrides, run_dir=run_dir))
    assert result["challenger_version"] == 2
    out["compare report.html"] = run_dir / "report.html"
    out["dask-report.html"] = run_dir / "dask-report.html"

    # task=explore the same way (monitor.html: tests/test_monitor_drift.py opens it, as it
    # needs a bundle with a monitoring reference)
    source = [o for o in overrides if o.startswith(("cluster", "data.", "registry."))]
    run_dir = tmp / "explore"
    explore = ["task=explore", *source, "explore.recent_days=7", "explore.baseline_days=21"]
    execute(compose(explore, run_dir=run_dir))
    out["explore.html"] = run_dir / "explore.html"
    return out


#: page -> (plots that must draw data, whether every plot must hold data, words on the page)
EXPECTED: dict[str, tuple[int, bool, tuple[str, ...]]] = {
    # ROC, PR, score distribution, per day, importance
    "report.html": (5, True, ("Summary", "Threshold table", "xgboost v1", "xgboost v2")),
    # rows per day, fraud per month, amounts
    "onboard.html": (3, True, ("Summary", "Data profile")),
    "compare report.html": (1, True, ("challenger v2 vs champion v1", "average_precision")),
    # the task stream is the first tab (the other tabs' plots draw once opened)
    "dask-report.html": (4, False, ("Task Stream",)),
    # segments by the strength of their rise: grey bars unless a rise is significant, and none
    # is in this stationary world, so no coloured plot is asked for; every plot holds rows
    "explore.html": (0, True, ("Emerging risk", "Where the model misses")),
}


@pytest.mark.slow  # the pages need a trained world and a compare run (~1-4 min, by load)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_html_output_renders_offline(pages, name, tmp_path) -> None:
    plots, all_data, words = EXPECTED[name]
    path = pages[name]
    text = path.read_text(encoding="utf-8")
    assert "cdn.bokeh.org" not in text
    shot = tmp_path / f"{name.replace(' ', '-')}.png"
    page = check_offline_page(path, shot, min_plots=plots, all_data=all_data)
    assert len(page.plots) >= max(plots, 1), page.plots
    for word in words:
        assert word in page.dom, f"{name}: {word!r} not on the page"
    print(
        f"\n{name}: {len(page.drawn)}/{len(page.plots)} plots drew data, Bokeh {page.bokeh}; "
        f"screenshot {page.screenshot}"
    )


def test_the_probe_sees_a_page_that_needs_the_network(tmp_path) -> None:
    """The check's own check: a Bokeh page in the default CDN mode (what dask-report.html was)
    is refused offline: the external script is listed, its load fails, nothing is drawn."""
    from bokeh.embed import file_html
    from bokeh.plotting import figure
    from bokeh.resources import CDN

    fig = figure(width=300, height=200)
    fig.line([1, 2, 3], [1, 3, 2], color="#d62728")
    path = tmp_path / "cdn.html"
    path.write_text(file_html(fig, CDN, "cdn"), encoding="utf-8")
    assert any(
        u.startswith("https://cdn.bokeh.org/") for u in external_references(path.read_text())
    )
    page = open_page(path, tmp_path / "cdn.png")
    assert page.errors, "a failed script load must show as an error"
    assert page.drawn == [] and page.bokeh is None


@pytest.mark.slow
def test_outputs_are_left_as_written(pages) -> None:
    """The probe runs in a copy beside the screenshot: the outputs themselves are untouched."""
    for path in pages.values():
        assert "data-probe" not in path.read_text(encoding="utf-8")
        assert not path.with_suffix(".probe.html").exists()
