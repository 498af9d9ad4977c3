"""Notebooks: stored without outputs, and each one runs headless against a real cluster.

``02-walkthrough`` is the package's tour on the cluster (load a source, features, folds, the
report's figures, online scoring); its test checks what a reader sees in the outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "fraud-dask-tests"


#: what each notebook's outputs must show, beyond the connection line every notebook prints
SHOWS: dict[str, list[str]] = {
    "01-attach-to-cluster.ipynb": ["50000 transactions on 50 terminals"],
    "02-walkthrough.ipynb": [
        "30,000 transactions written, 30,000 read back",
        "features, e.g. [",
        "fold test-0: AP ",
        "application/vnd.bokehjs_exec.v0+json",  # the report's figures, shown inline
        "scored 10 events online with fraud-synthetic v1",
    ],
    "03-emerging-risk.ipynb": [  # helper D2's (issue 15): the injected pattern is found
        "40,000 transactions written",
        "flagged: ",
        "category=pharmacy",
        "cards tested at pharmacies",
    ],
}


def test_there_are_notebooks() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert "01-attach-to-cluster.ipynb" in names and "02-walkthrough.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} hold outputs or execution counts"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data dir with a kernelspec that runs this interpreter (the venv's python)."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name=KERNEL, prefix=str(prefix), display_name="fraud_dask tests")
    spec = json.loads((prefix / "share/jupyter/kernels" / KERNEL / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    return prefix / "share" / "jupyter"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_against_the_running_cluster(
    path: Path,
    cluster: Any,
    kernel_dir: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nbformat
    from nbclient import NotebookClient

    # the scheduler file the way scripts/start-cluster publishes it, found through the env var
    scheduler_file = tmp_path / "scheduler.json"
    dashboard = cluster.scheduler.services["dashboard"].port
    scheduler_file.write_text(
        json.dumps({"address": cluster.scheduler_address, "services": {"dashboard": dashboard}})
    )
    monkeypatch.setenv("FRAUD_DASK_SCHEDULER_FILE", str(scheduler_file))
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    # where the walk-through writes its data, run directory and registry
    monkeypatch.setenv("FRAUD_DASK_WALKTHROUGH_DIR", str(tmp_path_factory.mktemp("walk")))
    transitions_before = cluster.scheduler.transition_counter

    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},  # the notebook's cwd: not the repo
    ).execute()

    text = "\n".join(
        out.get("text", "") + json.dumps(out.get("data", {}))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert f"connected to {cluster.scheduler_address} (2 workers)" in text
    assert f"Dashboard: http://127.0.0.1:{dashboard}/status" in text
    for shown in SHOWS.get(path.name, []):
        assert shown in text, f"{path.name}: {shown!r} not in the outputs"
    errors = [out for cell in nb.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]  # fmt: skip
    assert errors == []
    # the computation ran on the cluster, not in the kernel
    assert cluster.scheduler.transition_counter > transitions_before
    assert not any(p.name != "scheduler.json" for p in tmp_path.iterdir())
