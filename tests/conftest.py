"""Shared fixtures: one real LocalCluster (2 worker processes) for the whole session."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, object]]:
    """A real S3-protocol server (moto) on 127.0.0.1, random port, for the whole session.

    Yields a dict: ``endpoint_url`` and ``storage_options`` (explicit test keys, for fsspec/s3fs
    on the client and the Dask workers). Create a bucket per test with :func:`make_bucket`.
    """
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    try:
        yield {"endpoint_url": endpoint, "storage_options": options}
    finally:
        server.stop()


@pytest.fixture()
def make_bucket(s3_server) -> Callable[[str], dict]:
    """Create a bucket on :func:`s3_server` by name; returns the storage options to reach it."""
    import boto3

    options = s3_server["storage_options"]

    def create(name: str) -> dict:
        # no location constraint: moto rejects us-east-1 as one (s3fs.mkdir would send it)
        boto3.client(
            "s3",
            endpoint_url=s3_server["endpoint_url"],
            aws_access_key_id=options["key"],
            aws_secret_access_key=options["secret"],
            region_name="us-east-1",
        ).create_bucket(Bucket=name)
        return options

    return create
