"""The model registry: immutable versions, atomic aliases, verified loading, a real kill."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from omegaconf import OmegaConf

from fraud_dask.registry import Registry, data_fingerprint, git_revision
from fraud_dask.train import XGBoostModel

ROOT = Path(__file__).resolve().parents[1]
FEATURES = {"name": "tiny", "windows": [{"entity": ["card_id"], "windows": ["1d"]}]}


def make_model(seed: int = 0, rounds: int = 5) -> tuple[XGBoostModel, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = (x["a"] + 0.5 * rng.normal(size=400) > 1).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "seed": seed, "nthread": 1},
        xgb.DMatrix(x, y),
        num_boost_round=rounds,
    )
    model = XGBoostModel(["a", "b"], info={"rows": 400}, booster=booster, best_iteration=rounds - 1)
    return model, x


def register(reg: Registry, seed: int = 0, **kw):
    model, x = make_model(seed)
    version = reg.register(
        "fraud",
        model,
        features=FEATURES,
        config=OmegaConf.create({"seed": seed, "model": {"kind": "xgboost"}}),
        metrics={"test": {"average_precision": 0.5 + seed / 100, "roc_auc": 0.9}},
        fingerprint=data_fingerprint(x),
        **kw,
    )
    return version, model, x


def test_register_load_round_trip(tmp_path):
    reg = Registry(str(tmp_path / "reg"))
    version, model, x = register(reg)
    assert version == 1
    assert reg.versions("fraud") == [1]
    assert reg.aliases("fraud") == {"champion": 1}  # the first version is champion

    bundle = reg.load("fraud")  # champion
    assert bundle.version == 1
    expected = model.booster.predict(xgb.DMatrix(x), iteration_range=(0, 5))
    got = bundle.model.predict_partition(x)
    np.testing.assert_array_equal(got, expected)
    assert bundle.features == FEATURES
    assert bundle.config == {"seed": 0, "model": {"kind": "xgboost"}}
    assert bundle.metrics["test"]["average_precision"] == 0.5

    m = bundle.manifest
    assert m["libraries"]["xgboost"] == xgb.__version__
    assert m["libraries"]["pandas"] == pd.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert m["git"]["commit"] == head.stdout.strip()
    assert m["fingerprint"]["rows"] == 400
    assert m["model"]["columns"] == ["a", "b"]
    assert set(m["files"]) == {
        "model/model.ubj",
        "model/model.json",
        "features.json",
        "config.json",
        "metrics.json",
    }
    listing = reg.list("fraud")
    assert [(r["version"], r["aliases"]) for r in listing] == [(1, ["champion"])]
    assert listing[0]["headline"] == {"average_precision": 0.5, "roc_auc": 0.9}


def test_versions_are_immutable_and_alias_moves(tmp_path):
    reg = Registry(str(tmp_path / "reg"))
    register(reg, seed=0)
    v1_bytes = (tmp_path / "reg/fraud/1/model/model.ubj").read_bytes()
    v2, model2, x = register(reg, seed=1)
    assert v2 == 2
    assert reg.resolve("fraud", "champion") == 1  # registering does not promote by default
    assert reg.resolve("fraud", "latest") == 2
    record = reg.promote("fraud", 2)
    assert record["version"] == 2 and record["previous"] == 1
    assert [h["version"] for h in record["history"]] == [1]
    assert reg.load("fraud").version == 2
    np.testing.assert_array_equal(
        reg.load("fraud").model.predict_partition(x),
        model2.booster.predict(xgb.DMatrix(x), iteration_range=(0, 5)),
    )
    # version 1 is untouched, and a third registration with promote=True moves the alias
    assert (tmp_path / "reg/fraud/1/model/model.ubj").read_bytes() == v1_bytes
    v3, _, _ = register(reg, seed=2, promote=True)
    assert reg.aliases("fraud") == {"champion": 3}
    assert reg.show("fraud", "v1")["version"] == 1
    assert reg.show("fraud")["aliases"] == ["champion"]


def test_bad_references_and_names(tmp_path):
    reg = Registry(str(tmp_path / "reg"))
    with pytest.raises(KeyError, match="no model named 'fraud'"):
        reg.load("fraud")
    register(reg)
    with pytest.raises(KeyError, match="no alias 'staging'.*champion"):
        reg.resolve("fraud", "staging")
    with pytest.raises(KeyError, match="no version 7; versions: \\[1\\]"):
        reg.resolve("fraud", 7)
    with pytest.raises(ValueError, match="model name '../x' is not allowed"):
        reg.versions("../x")
    model, _ = make_model()
    with pytest.raises(ValueError, match="reserved or unsafe"):
        reg.register("fraud", model, features={}, config={}, extra_files={"metrics.json": b"x"})


def test_damaged_bundle_is_refused(tmp_path):
    reg = Registry(str(tmp_path / "reg"))
    register(reg)
    target = tmp_path / "reg/fraud/1/model/model.ubj"
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    os.chmod(target, 0o644)
    target.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model/model.ubj does not match its manifest"):
        reg.load("fraud")


def test_loading_never_unpickles(tmp_path, monkeypatch):
    reg = Registry(str(tmp_path / "reg"))
    register(reg)

    def tripwire(*args, **kwargs):
        raise AssertionError("pickle was used while loading a bundle")

    for attr in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, attr, tripwire)
    bundle = reg.load("fraud")
    assert bundle.model.booster.num_boosted_rounds() == 5
    for path in (tmp_path / "reg/fraud/1").rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"


def test_data_fingerprint_ignores_partitioning_and_order_but_not_content(client):
    import dask.dataframe as dd

    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.normal(size=1000), "k": rng.integers(0, 9, 1000)})
    base = data_fingerprint(df)
    assert data_fingerprint(dd.from_pandas(df, npartitions=7)) == base
    assert data_fingerprint(dd.from_pandas(df.sample(frac=1.0, random_state=1), npartitions=3)) == (
        base
    )
    changed = df.copy()
    changed.loc[500, "a"] += 1e-9
    assert data_fingerprint(changed)["row_hash_sum"] != base["row_hash_sum"]
    assert data_fingerprint(df.iloc[:-1])["rows"] == 999


def test_concurrent_registrations_get_distinct_versions(tmp_path):
    reg = Registry(str(tmp_path / "reg"))
    register(reg)
    got, errors = [], []

    def work(seed):
        try:
            got.append(register(Registry(str(tmp_path / "reg")), seed=seed)[0])
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(got) == [2, 3, 4, 5]
    assert reg.versions("fraud") == [1, 2, 3, 4, 5]
    for v in range(1, 6):
        reg.load("fraud", v)  # every one complete and verified


def test_registry_on_s3(make_bucket):
    reg = Registry("s3://models/registry", make_bucket("models"))
    register(reg)
    v2, model2, x = register(reg, seed=1, promote=True)
    assert reg.versions("fraud") == [1, 2]
    bundle = reg.load("fraud")
    assert bundle.version == 2 and bundle.path == "s3://models/registry/fraud/2"
    np.testing.assert_array_equal(
        bundle.model.predict_partition(x),
        model2.booster.predict(xgb.DMatrix(x), iteration_range=(0, 5)),
    )
    assert reg.alias_record("fraud", "champion")["previous"] == 1


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_registry import make_model
    from fraud_dask.registry import Registry
    model, _ = make_model(seed=9)
    big = {{f"reference/part-{{i}}.bin": bytes([i]) * (48 << 20) for i in range(8)}}
    print("ready", flush=True)
    Registry({root!r}).register("fraud", model, features={{}}, config={{}},
                                extra_files=big, promote=True)
    print("registered", flush=True)
    """
)


@pytest.mark.slow
def test_kill_during_register_leaves_no_partial_version(tmp_path):
    root = tmp_path / "reg"
    reg = Registry(str(root))
    _, model, x = register(reg)
    champion_before = json.loads((root / "fraud/aliases/champion.json").read_text())
    script = KILL_SCRIPT.format(tests=str(ROOT / "tests"), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    # Kill once the big bundle is being written: staging holds some, not all, of its files.
    deadline = time.monotonic() + 120
    seen = []
    while time.monotonic() < deadline and proc.poll() is None:
        staging = list((root / "fraud").glob(".staging-*"))
        if staging and (staging[0] / "reference").is_dir():
            seen = [p.name for p in (staging[0] / "reference").iterdir()]
            if seen:
                break
        time.sleep(0.001)
    assert proc.poll() is None, "the registration finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert 1 <= len(seen) < 8

    leftovers = list((root / "fraud").glob(".staging-*"))
    assert len(leftovers) == 1 and not (leftovers[0] / "manifest.json").exists()
    assert reg.versions("fraud") == [1]
    assert not (root / "fraud/2").exists()
    assert json.loads((root / "fraud/aliases/champion.json").read_text()) == champion_before
    bundle = reg.load("fraud")  # the old champion, every file verified
    assert bundle.version == 1
    np.testing.assert_array_equal(
        bundle.model.predict_partition(x),
        model.booster.predict(xgb.DMatrix(x), iteration_range=(0, 5)),
    )
    assert reg.clean_staging("fraud", older_than_s=0) == [str(leftovers[0])]
    assert register(reg, seed=5)[0] == 2


def test_git_revision_outside_a_checkout(tmp_path):
    assert git_revision(tmp_path) == {"commit": None}


def test_registry_task_list_show_promote(tmp_path):
    from fraud_dask.tasks import registry as task

    reg = Registry(str(tmp_path / "reg"))
    register(reg)
    register(reg, seed=1)
    cfg = OmegaConf.create(
        {
            "task": {"name": "registry", "action": "list"},
            "registry": {
                "path": str(tmp_path / "reg"),
                "name": "fraud",
                "version": "2",
                "alias": "champion",
                "storage_options": {},
            },
        }
    )
    out = task.run(cfg, None)
    assert [(r["version"], r["aliases"]) for r in out["versions"]] == [(1, ["champion"]), (2, [])]
    cfg.task.action = "show"
    assert task.run(cfg, None)["version"]["version"] == 2
    cfg.task.action = "promote"
    assert task.run(cfg, None)["promoted"]["version"] == 2
    assert reg.aliases("fraud") == {"champion": 2}
    cfg.task.action = "delete"
    # a closed set (RegistryAction): the typed config refuses another value, naming the choices
    with pytest.raises(ValueError, match="Invalid value 'delete', expected one of \\[list, show"):
        task.run(cfg, None)


# -- a model belongs to its source ----------------------------------------------------------


def test_registry_name_follows_the_data_source():
    from fraud_dask.config import compose

    assert compose([]).registry.name == "fraud-synthetic"  # data=synthetic is the default
    assert compose(["data=synthetic"]).registry.name == "fraud-synthetic"
    assert compose(["data=handbook"]).registry.name == "fraud-handbook"
    assert compose(["experiment=handbook_plus"]).registry.name == "fraud-handbook"
    # every task reads the same name: scoring the handbook uses the handbook's model
    for task in ("score", "serve", "compare", "registry"):
        assert compose([f"task={task}", "data=handbook"]).registry.name == "fraud-handbook"
    # a name the user sets wins
    assert compose(["data=handbook", "registry.name=team-a"]).registry.name == "team-a"


def test_bundle_records_source_and_training_period(tmp_path):
    reg = Registry(str(tmp_path / "reg"))
    training = {
        "fold": "test-0",
        "start": "2025-01-01",
        "end": "2025-01-21",
        "rows": 400,
        "frauds": 12,
    }
    version, _, _ = register(
        reg,
        source={"name": "acme", "path": "s3://AKIAXYZ:hunter2@bucket/tx?X-Amz-Signature=abc1"},
        training=training,
    )
    shown = reg.show("fraud", version)
    assert shown["source"] == {"name": "acme", "path": "s3://***@bucket/tx?X-Amz-Signature=***"}
    assert shown["training"] == training
    manifest = json.loads((tmp_path / "reg/fraud/1/manifest.json").read_text())
    assert manifest["source"] == shown["source"] and manifest["training"] == training
    for path in (tmp_path / "reg/fraud/1").rglob("*"):  # no credential anywhere in the bundle
        if path.is_file():
            assert b"hunter2" not in path.read_bytes() and b"abc1" not in path.read_bytes()
    [row] = reg.list("fraud")
    assert row["source"]["name"] == "acme" and row["training"] == training and row["rows"] == 400
    bundle = reg.load("fraud")
    assert bundle.source == shown["source"] and bundle.training == training

    # without an explicit source, the config's data node is the source
    model, _ = make_model(seed=1)
    reg.register(
        "fraud",
        model,
        features=FEATURES,
        config=OmegaConf.create({"data": {"name": "synthetic", "path": "/data/tx", "seed": 1}}),
    )
    assert reg.show("fraud", 2)["source"] == {"name": "synthetic", "path": "/data/tx"}


def _make_old(folder: Path) -> None:
    """Rewrite a bundle's manifest as registries wrote it before source and period existed."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["source"], manifest["training"]
    os.chmod(path, 0o644)
    path.write_text(json.dumps(manifest, indent=2))


def test_older_bundles_without_source_still_load_and_list(tmp_path, capsys):
    from fraud_dask.tasks import registry as task

    reg = Registry(str(tmp_path / "reg"))
    register(reg, seed=0)  # its config has no data node: the source is unknown
    model, x = make_model(seed=1)
    reg.register(
        "fraud",
        model,
        features=FEATURES,
        config={"data": {"name": "synthetic", "path": "/data/tx"}},
        metrics={"test": {"average_precision": 0.25}},
    )
    for version in (1, 2):
        _make_old(tmp_path / "reg/fraud" / str(version))

    rows = reg.list("fraud")
    assert [r["source"] for r in rows] == [None, {"name": "synthetic", "path": "/data/tx"}]
    assert [r["training"] for r in rows] == [{}, {}]
    assert [r["rows"] for r in rows] == [400, None]  # the fingerprint's rows when recorded
    bundle = reg.load("fraud", 2)  # every file still verifies
    assert bundle.source["name"] == "synthetic" and bundle.training == {}
    np.testing.assert_array_equal(
        bundle.model.predict_partition(x),
        model.booster.predict(xgb.DMatrix(x), iteration_range=(0, 5)),
    )

    cfg = _task_cfg(tmp_path, "list")
    task.run(cfg, None)
    lines = _table(capsys.readouterr().out)
    assert lines[1][2:] == ["-", "-", "400", "0.500", "champion"]
    assert lines[2][2:] == ["synthetic", "-", "-", "0.250", "-"]


def _task_cfg(tmp_path: Path, action: str, version: str = "champion", name: str = "fraud"):
    return OmegaConf.create(
        {
            "task": {"name": "registry", "action": action},
            "registry": {
                "path": str(tmp_path / "reg"),
                "name": name,
                "version": version,
                "alias": "champion",
                "storage_options": {},
            },
        }
    )


def _table(out: str) -> list[list[str]]:
    """The printed version table as cells (columns are separated by two or more spaces)."""
    import re

    lines = out.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("version"))
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start:] if line.strip()]


def test_registry_task_prints_a_table_and_a_summary(tmp_path, capsys):
    from fraud_dask.tasks import registry as task

    reg = Registry(str(tmp_path / "reg"))
    source = {"name": "synthetic", "path": "/data/tx"}
    register(
        reg,
        seed=0,
        source=source,
        training={"fold": "test-0", "start": "2025-01-01", "end": "2025-01-21", "rows": 1234},
    )
    register(
        reg,
        seed=7,
        source=source,
        training={
            "fold": "test-0",
            "start": "2025-02-01",
            "end": "2025-02-21",
            "rows": 56789,
            "frauds": 321,
        },
    )
    created = [reg.show("fraud", v)["created"] for v in (1, 2)]

    out = task.run(_task_cfg(tmp_path, "list"), None)
    assert [r["version"] for r in out["versions"]] == [1, 2]  # still the metrics.json dict
    printed = capsys.readouterr().out
    assert f"model fraud in {tmp_path / 'reg'}" in printed
    table = _table(printed)
    assert table[0] == ["version", "created", "source", "period", "rows", "AP", "aliases"]
    minute = [c[:16].replace("T", " ") for c in created]  # UTC, to the minute
    assert table[1] == [
        "1",
        minute[0],
        "synthetic",
        "2025-01-01..2025-01-21",
        "1,234",
        "0.500",
        "champion",
    ]
    assert table[2] == [
        "2",
        minute[1],
        "synthetic",
        "2025-02-01..2025-02-21",
        "56,789",
        "0.570",
        "-",
    ]

    shown = task.run(_task_cfg(tmp_path, "show", "2"), None)
    assert shown["version"]["version"] == 2 and shown["version"]["training"]["frauds"] == 321
    summary = capsys.readouterr().out
    assert summary.startswith("fraud version 2 (aliases: none)")
    assert "source     synthetic (/data/tx)" in summary
    assert "trained    2025-02-01..2025-02-21 (fold test-0): 56,789 rows, 321 frauds" in summary
    assert "average_precision 0.5700" in summary
    assert str(tmp_path / "reg" / "fraud" / "2") in summary

    # a model name the registry lacks: say so, and list what it has
    task.run(_task_cfg(tmp_path, "list", name="fraud-handbook"), None)
    printed = capsys.readouterr().out
    assert "has no model 'fraud-handbook'; its models: fraud" in printed
    assert len(_table(printed)) == 3


def test_registry_task_unknown_version_is_one_clear_line(tmp_path):
    from fraud_dask.tasks import registry as task

    reg = Registry(str(tmp_path / "reg"))
    register(reg, seed=0)
    register(reg, seed=1)
    for action in ("show", "promote"):
        with pytest.raises(KeyError) as info:
            task.run(_task_cfg(tmp_path, action, "7"), None)
        message = str(info.value)
        assert message == (
            f"registry {tmp_path / 'reg'}: model 'fraud' has no version 7; versions: [1, 2]; "
            "aliases: champion=1"
        )
    with pytest.raises(KeyError, match="model 'fraud' has no alias 'best'; versions: \\[1, 2\\]"):
        task.run(_task_cfg(tmp_path, "show", "best"), None)


def test_pipeline_registers_source_and_newest_training_period(client, tmp_path):
    import datetime as dt

    import dask.dataframe as dd

    from fraud_dask.config import compose
    from fraud_dask.split import Fold
    from fraud_dask.train.folds import register_newest

    cfg = compose(
        [
            f"paths.data_home={tmp_path / 'home'}",
            "data.path=s3://user:secret-pw@bucket/tx",
        ],
        run_dir=tmp_path / "run",
    )
    days = pd.date_range("2025-01-01", periods=60, freq="6h", tz="UTC")
    frame = pd.DataFrame({"ts": days, "is_fraud": (np.arange(len(days)) % 10 == 0).astype("int8")})
    rng = np.random.default_rng(0)  # the model's inputs, described by the bundle's reference
    frame = frame.assign(a=rng.normal(size=len(days)), b=rng.normal(size=len(days)))
    folds = [
        Fold(
            "test-1",
            dt.date(2025, 1, 1),
            dt.date(2025, 1, 5),
            dt.date(2025, 1, 8),
            dt.date(2025, 1, 9),
        ),
        Fold(
            "test-0",
            dt.date(2025, 1, 3),
            dt.date(2025, 1, 7),
            dt.date(2025, 1, 10),
            dt.date(2025, 1, 11),
        ),
    ]
    model, _ = make_model()
    models = {f.name: {"xgboost": model} for f in folds}
    metrics = {"test": {"average_precision": 0.4321}}

    out = register_newest(cfg, dd.from_pandas(frame, npartitions=3), models, folds, metrics)
    assert out["name"] == "fraud-synthetic" and out["version"] == 1 and out["fold"] == "test-0"
    in_period = frame[(frame["ts"] >= "2025-01-03") & (frame["ts"] < "2025-01-08")]
    shown = Registry.from_conf(cfg.registry).show("fraud-synthetic", 1)
    assert shown["source"] == {"name": "synthetic", "path": "s3://***@bucket/tx"}
    assert shown["training"] == {
        "fold": "test-0",
        "start": "2025-01-03",
        "end": "2025-01-07",
        "rows": len(in_period),
        "frauds": int(in_period["is_fraud"].sum()),
    }
    assert shown["headline"] == {"average_precision": 0.4321}
    reference = Registry.from_conf(cfg.registry).load("fraud-synthetic", 1).reference
    assert reference is not None and reference["rows"] == len(in_period)
    assert reference["period"] == {"fold": "test-0", "start": "2025-01-03", "end": "2025-01-07"}
    for path in (tmp_path / "home/registry/fraud-synthetic/1").rglob("*"):
        if path.is_file():
            assert b"secret-pw" not in path.read_bytes(), path
