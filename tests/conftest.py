"""Shared fixtures: one real LocalCluster (2 worker processes) for the whole session."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANDBOOK = (ROOT / ".." / "shared" / "handbook").resolve()

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


@pytest.fixture(scope="session")
def cluster() -> Iterator[object]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit="4GiB",
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as lc:
        yield lc


@pytest.fixture(scope="session")
def client(cluster: object) -> Iterator[object]:
    from distributed import Client

    with Client(cluster) as c:  # type: ignore[arg-type]
        yield c


@pytest.fixture(scope="session")
def handbook_dir() -> Path:
    if not (HANDBOOK / "raw").is_dir():
        pytest.skip(f"handbook reference data not found at {HANDBOOK}")
    return HANDBOOK
