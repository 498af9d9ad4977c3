"""task=tune: Optuna trials on the validation folds, side by side in worker tasks.

The acceptance checks of the tuner: it never reads the test folds (their labels poisoned, the
study is the same trial for trial), an interrupted study continues where it stopped, the pruner
stops bad trials in their first rounds, and the experiment it writes is found by
``experiment=<name>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from browser import CHROMIUM, check_offline_page
from tune_world import MODEL, SPLIT, world, write_world

SPACE = {
    "max_depth": {"kind": "int", "low": 2, "high": 5},
    "learning_rate": {"kind": "float", "low": 0.05, "high": 0.4, "log": True},
}


def _cfg(tmp_path: Path, features: str, *extra: str, space: dict | None = None) -> object:
    from fraud_dask.config import compose

    cfg = compose(
        [
            "task=tune",
            f"paths.data_home={tmp_path / 'home'}",
            f"task.features_path={features}",
            f"tune.storage=sqlite:///{tmp_path / 'study.db'}",
            f"tune.experiment_dir={tmp_path / 'configs'}",
            "tune.jobs=1",
            *SPLIT,
            *MODEL,
            *extra,
        ],
        run_dir=tmp_path / "run",
    )
    from fraud_dask.tune import ParamSpace

    # the whole space (an override on the command line would merge into the default one)
    cfg.tune.space = {k: ParamSpace(**v) for k, v in (space or SPACE).items()}
    return cfg


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object]:
    frame = world()
    return write_world(frame, tmp_path_factory.mktemp("world") / "features"), frame


def _run(cfg: object, client: object) -> dict:
    from fraud_dask.tasks import tune

    return tune.run(cfg, client)


def test_poisoned_test_labels_change_nothing(client, tmp_path, clean):
    """The tuner reads the validation folds only: flipping every label of the test folds'
    test periods leaves each trial's value, and the chosen parameters, as they were."""
    from fraud_dask.split import make_folds

    path, frame = clean
    args = ["tune.n_trials=4", "tune.pruner=none"]
    first = _run(_cfg(tmp_path / "a", path, *args, "tune.study_name=clean"), client)

    cfg = _cfg(tmp_path / "a", path)
    span = (frame["ts"].min(), frame["ts"].max())
    tests = make_folds(cfg.split, "test", span)
    validations = make_folds(cfg.split, "validation", span)
    start = min(f.test_start for f in tests)
    # the validation folds end before the poisoned period starts
    assert max(f.test_end for f in validations) < start
    poisoned = frame.copy()
    later = (poisoned["ts"].dt.date >= start).to_numpy()
    poisoned.loc[later, "is_fraud"] = (1 - poisoned.loc[later, "is_fraud"]).astype("int8")
    assert later.sum() > 1000 and (poisoned["is_fraud"] != frame["is_fraud"]).sum() == later.sum()
    bad = write_world(poisoned, tmp_path / "poisoned")
    second = _run(_cfg(tmp_path / "b", bad, *args, "tune.study_name=poisoned"), client)

    values = [t["value"] for t in first["all_trials"]]
    assert len(values) == 4 and all(v is not None for v in values)
    assert values == [t["value"] for t in second["all_trials"]]
    assert first["best"]["params"] == second["best"]["params"]
    assert [f["fold"]["name"] for f in first["folds"]] == [v.name for v in validations]


def test_resume_continues_the_study(client, tmp_path, clean, capsys):
    """A second run with the same study and storage continues it: the trial numbers go on, a
    trial an interrupted run left running is failed and run again with its parameters, and
    ``tune.n_trials`` counts the study's finished trials (its progress bar too)."""
    import optuna

    from fraud_dask import console

    path, _ = clean
    args = ["tune.study_name=resumed", "tune.pruner=none"]
    first = _run(_cfg(tmp_path, path, *args, "tune.n_trials=2"), client)
    assert first["trials"]["total"] == 2 and not first["trials"]["resumed"]

    # what a run killed mid-trial leaves in the storage: a trial in state RUNNING
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.load_study(study_name="resumed", storage=url)
    left = study.ask({"max_depth": optuna.distributions.IntDistribution(2, 5)})
    left.suggest_float("learning_rate", 0.05, 0.4, log=True)
    left_params = dict(left.params)

    capsys.readouterr()
    console.configure(console.ConsoleConf(progress=console.ProgressMode.on, poll_s=0.1))
    try:
        second = _run(_cfg(tmp_path, path, *args, "tune.n_trials=4"), client)
    finally:
        console.configure(console.ConsoleConf())
    bar = capsys.readouterr().err
    assert "trials" in bar and "4/4" in bar, bar  # the bar starts at the 2 finished before
    assert second["trials"]["resumed"] and second["trials"]["finished_before"] == 2
    assert second["trials"]["requeued"] == [2]
    study = optuna.load_study(study_name="resumed", storage=url)
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))
    states = [t.state.name for t in trials]
    assert states[:3] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert states.count("COMPLETE") == 4 and "RUNNING" not in states
    rerun = [t for t in trials if t.user_attrs.get("requeued_from") == 2]
    assert len(rerun) == 1 and rerun[0].params == left_params
    assert second["trials"]["this_run"] == 2  # the requeued trial and one new one
    # the resumed run's sampler draws new points, not the first run's again
    new = [t.params for t in trials if t.number > 2 and "requeued_from" not in t.user_attrs]
    assert new and all(p not in (trials[0].params, trials[1].params) for p in new)

    third = _run(_cfg(tmp_path, path, *args, "tune.n_trials=4"), client)
    assert third["trials"]["this_run"] == 0 and third["trials"]["total"] == len(trials)


def test_pruning_stops_bad_trials_in_their_first_rounds(client, tmp_path, clean):
    """A parameter that leaves the model without a split (min_child_weight far above the rows'
    hessian sum) ranks nothing: those trials are pruned after the warm-up rounds of the first
    fold, while the good ones finish."""
    path, _ = clean
    cfg = _cfg(
        tmp_path,
        path,
        "tune.n_trials=8",
        "tune.startup_trials=1",
        "tune.warmup_steps=2",
        "tune.report_every=1",
        "tune.study_name=pruned",
        space={
            "min_child_weight": {"kind": "categorical", "choices": [1.0, 1e6]},
            "max_depth": {"kind": "int", "low": 2, "high": 4},
        },
    )
    out = _run(cfg, client)
    trials = out["all_trials"]
    first_done = min(t["number"] for t in trials if t["state"] == "COMPLETE")
    bad = [t for t in trials if t["params"]["min_child_weight"] > 1e5 and t["number"] > first_done]
    good = [t for t in trials if t["params"]["min_child_weight"] == 1.0]
    assert bad and good, [t["params"] for t in trials]
    for t in bad:
        assert t["state"] == "PRUNED", t
        assert t["pruned_at"]["round"] == 3  # steps 0 and 1 are the warm-up
    assert any(t["state"] == "COMPLETE" for t in good)
    assert out["best"]["params"]["min_child_weight"] == 1.0
    assert out["trials"]["pruned"] == len([t for t in trials if t["state"] == "PRUNED"])


def test_best_parameters_become_an_experiment(client, tmp_path, clean, monkeypatch):
    """The experiment lands in <data home>/configs, which Hydra searches: ``experiment=<name>``
    composes the tuned model; tune.html and metrics material are written."""
    from fraud_dask.config import compose
    from fraud_dask.tune.config import user_config_dir

    path, _ = clean
    home = tmp_path / "home"
    monkeypatch.setenv("FRAUD_DASK_HOME", str(home))
    cfg = _cfg(tmp_path, path, "tune.n_trials=3", "tune.experiment_dir=null", "tune.jobs=null")
    out = _run(cfg, client)
    assert out["experiment"]["name"] == "tune-synthetic-default"
    assert Path(out["experiment"]["path"]).parent.parent == Path(user_config_dir())
    assert out["jobs"] == 2  # one trial per worker thread
    json.dumps(out)  # metrics.json material as it is

    again = compose([f"experiment={out['experiment']['name']}"])
    best = out["best"]["params"]
    assert again.model.params.max_depth == best["max_depth"]
    assert again.model.params.learning_rate == pytest.approx(best["learning_rate"])
    assert again.model.num_boost_round == 20 and again.split.n_folds == 3
    mean = np.mean([f["average_precision"] for f in out["best"]["per_fold"]])
    assert out["best"]["value"] == pytest.approx(mean)

    page = Path(out["report"]).read_text()
    assert "fraud_dask tuning" in page and "cdn.bokeh.org" not in page
    assert f"experiment={out['experiment']['name']}" in page
    if CHROMIUM:  # opened offline: no outside load, no script error, the plots drew data
        check_offline_page(Path(out["report"]), tmp_path / "tune.png", min_plots=2)


def test_trials_table_ranks_complete_trials_before_pruned_ones():
    """A pruned trial's value is its last report on part of the folds: the table lists every
    complete trial, best first, before it, whatever its value."""
    from fraud_dask.tune.report import _rows

    def trial(number, state, value):
        return {"number": number, "state": state, "value": value, "params": {}, "seconds": 1.0}

    trials = [
        trial(0, "COMPLETE", 0.70),
        trial(1, "PRUNED", 0.76),
        trial(2, "COMPLETE", 0.75),
        trial(3, "FAIL", None),
        trial(4, "PRUNED", 0.60),
    ]
    assert [r["trial"] for r in _rows(trials)] == [2, 0, 1, 4, 3]
