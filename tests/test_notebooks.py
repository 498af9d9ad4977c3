"""Notebooks: stored without outputs, and each one runs headless against a real cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "fraud-dask-tests"


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS if p.name.startswith("01-attach-to-cluster")]


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
    assert "50000 transactions on 50 terminals" in text
    # the computation ran on the cluster, not in the kernel
    assert cluster.scheduler.transition_counter > transitions_before
    assert not any(p.name != "scheduler.json" for p in tmp_path.iterdir())
