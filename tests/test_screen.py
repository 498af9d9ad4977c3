"""Time-consistent feature screening (``tune.screen=true``): a leak that vanishes is dropped.

The source's ``leak`` input flags every fraud exactly until the validation folds' later periods
start, and is noise from then on; ``signal`` separates frauds all along. Screening must drop the
leak, keep the signal, and say why in metrics.json and tune.html.
"""

from __future__ import annotations

from pathlib import Path

from tune_world import MODEL, SPLIT, START, world, write_world


def test_a_leak_that_vanishes_is_dropped_and_the_report_says_why(client, tmp_path):
    from fraud_dask.config import compose
    from fraud_dask.split import make_folds
    from fraud_dask.tasks import tune
    from fraud_dask.tune import ParamSpace

    probe = world()
    split = compose(["task=tune", *SPLIT]).split
    span = (probe["ts"].min(), probe["ts"].max())
    folds = make_folds(split, "validation", span)
    later = min(f.test_start for f in folds)
    leak_until = (later - START.date()).days
    # the leak covers part of every validation fold's training period and none of its later one
    assert all(f.train_start < later for f in folds)
    path = write_world(world(leak_until=leak_until), tmp_path / "features")

    cfg = compose(
        [
            "task=tune",
            f"paths.data_home={tmp_path / 'home'}",
            f"task.features_path={path}",
            f"tune.storage=sqlite:///{tmp_path / 'study.db'}",
            f"tune.experiment_dir={tmp_path / 'configs'}",
            "tune.screen=true",
            "tune.n_trials=1",
            "tune.jobs=1",
            "tune.pruner=none",
            *SPLIT,
            *MODEL,
        ],
        run_dir=tmp_path / "run",
    )
    cfg.tune.space = {"max_depth": ParamSpace(kind="int", low=2, high=4)}
    out = tune.run(cfg, client)

    screen = out["screen"]
    assert "leak" in screen["dropped"] and "signal" not in screen["dropped"]
    rows = {r["group"]: r for r in screen["table"]}
    leak, signal = rows["input leak"], rows["input signal"]
    assert leak["decision"] == "dropped" and "does not hold over time" in leak["reason"]
    assert leak["early_signal"] > 0.3  # the model leaned on it in the training period
    assert leak["later_signal"] <= 0.1 * leak["early_signal"]
    assert signal["decision"] == "kept" and signal["later_signal"] > 0.1 * signal["early_signal"]
    # the experiment leaves the dropped inputs out
    text = Path(out["experiment"]["path"]).read_text()
    assert "exclude:" in text and "- leak" in text

    page = Path(out["report"]).read_text()
    assert "Feature screening" in page and "does not hold over time" in page
