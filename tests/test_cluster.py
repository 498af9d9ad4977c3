"""Cluster selection: real clusters started, attached to and torn down by fraud_dask.cluster."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fraud_dask.cluster import (
    ExistingClusterConf,
    GpuClusterConf,
    connect,
    default_scheduler_file,
    existing_address,
    gpu_count,
    resolve_device,
    worker_gpus,
)


def _composed(conf: object) -> object:
    """The node as ``compose()`` hands it to a notebook (connect takes it as well)."""
    return OmegaConf.structured(conf)


def test_local_cluster_sized_from_config_and_closed_on_exit(monkeypatch) -> None:
    from dask.system import CPU_COUNT
    from distributed import system

    from fraud_dask.config import compose

    # configs/cluster/local.yaml leaves the workers Dask's malloc settings
    assert dict(compose([]).cluster.worker_env) == {}
    # ... and Dask's share of the machine's memory for each worker's thread
    default = compose(["cluster.dashboard_address=127.0.0.1:0"]).cluster
    assert default.memory_limit == "auto"
    with connect(default) as client:
        limits = [
            w["memory_limit"] for w in client.scheduler_info(n_workers=-1)["workers"].values()
        ]
        share = int(system.MEMORY_LIMIT * min(1, 1 / CPU_COUNT))
        assert limits == [share, share]
    # configured malloc thresholds: this process's environment holds Dask's default as an
    # earlier cluster leaves it, and the configured value still wins
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    conf = compose(
        [
            "cluster.memory_limit=1GiB",
            "cluster.dashboard_address=127.0.0.1:0",
            "+cluster.worker_env.MALLOC_TRIM_THRESHOLD_=536870912",
            "+cluster.worker_env.MALLOC_MMAP_THRESHOLD_=268435456",
        ]
    ).cluster
    with connect(conf) as client:
        info = client.scheduler_info(n_workers=-1)
        workers = info["workers"]
        assert len(workers) == 2
        assert all(w["nthreads"] == 1 for w in workers.values())
        assert all(w["memory_limit"] == 2**30 for w in workers.values())
        # worker processes, not threads: each worker reports its own pid
        pids = client.run(lambda: __import__("os").getpid())
        assert len(set(pids.values())) == 2
        # the dashboard is bound to loopback only
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        assert client.submit(sum, [1, 2, 3]).result() == 6
        # the worker processes started with the configured malloc thresholds in their initial
        # environment (where glibc reads them), over Dask's defaults
        start_env = client.run(lambda: open("/proc/self/environ", "rb").read().split(b"\0"))
        for env in start_env.values():
            assert b"MALLOC_MMAP_THRESHOLD_=268435456" in env
            assert b"MALLOC_TRIM_THRESHOLD_=536870912" in env
        address = client.scheduler.address
    # the cluster was shut down on exit
    from distributed import Client

    with pytest.raises(OSError):
        Client(address, timeout="2s")


def test_existing_connects_by_address_and_leaves_the_cluster_running(cluster: object) -> None:
    address = cluster.scheduler_address  # type: ignore[attr-defined]
    with connect(ExistingClusterConf(address=address)) as client:
        assert client.scheduler.address == address
        assert client.submit(lambda x: x + 1, 41).result() == 42
    # still running: connect again
    with connect(ExistingClusterConf(address=address)) as client:
        assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2


def test_existing_reads_the_scheduler_file(
    cluster: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scheduler.json"
    address = cluster.scheduler_address  # type: ignore[attr-defined]
    path.write_text(json.dumps({"address": address}))
    monkeypatch.setenv("FRAUD_DASK_SCHEDULER_FILE", str(path))
    assert default_scheduler_file() == path
    assert existing_address(ExistingClusterConf()) == address
    with connect(ExistingClusterConf()) as client:
        assert client.scheduler.address == address


def test_existing_without_address_or_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUD_DASK_SCHEDULER_FILE", str(tmp_path / "nope.json"))
    with pytest.raises(FileNotFoundError, match="scripts/start-cluster"):
        with connect(ExistingClusterConf()):
            pass


def test_tls_needs_a_ca_and_a_certificate() -> None:
    conf = ExistingClusterConf(address="tls://127.0.0.1:1", tls_client_key="k.pem")
    with pytest.raises(ValueError, match="cluster.tls_ca_file"):
        with connect(conf):
            pass


@pytest.mark.skipif(gpu_count() > 0, reason="this machine has a GPU")
def test_gpu_cluster_without_gpu_warns_and_falls_back_to_local(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conf = GpuClusterConf(memory_limit="1GiB", require_gpu=False)
    with caplog.at_level(logging.WARNING, logger="fraud_dask.cluster"):
        with pytest.warns(RuntimeWarning, match="falling back to cluster=local"):
            with connect(conf) as client:
                assert len(client.scheduler_info(n_workers=-1)["workers"]) >= 1
                assert resolve_device(client, "auto") == "cpu"
    assert "falling back" in caplog.text


@pytest.mark.skipif(gpu_count() > 0, reason="this machine has a GPU")
def test_gpu_cluster_required_without_gpu_fails_before_starting() -> None:
    conf = GpuClusterConf(require_gpu=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="require_gpu=true"):
            with connect(conf):
                pass


def test_device_resolution_asks_the_workers(client: object) -> None:
    gpus = worker_gpus(client)
    assert len(gpus) == 2
    assert resolve_device(client, "cpu") == "cpu"
    if all(n > 0 for n in gpus.values()):
        assert resolve_device(client, "auto") == "cuda"
        assert resolve_device(client, "cuda") == "cuda"
    else:
        assert resolve_device(client, "auto") == "cpu"
        with pytest.raises(RuntimeError, match="model.device=cuda but 2 of 2 workers"):
            resolve_device(client, "cuda")


@pytest.mark.gpu
def test_device_resolution_finds_worker_gpus() -> None:
    if gpu_count() == 0:
        pytest.skip("no GPU on this machine")
    with connect(GpuClusterConf(require_gpu=True)) as client:
        assert resolve_device(client, "auto") == "cuda"


def _churn() -> tuple[int, int]:
    """Grow by 40 arrays of 4 MiB and free them: (RSS growth, RSS kept after the free)."""
    import numpy as np
    import psutil

    proc = psutil.Process()
    before = proc.memory_info().rss
    blocks = [np.ones(2**19) for _ in range(40)]
    during = proc.memory_info().rss
    del blocks
    return during - before, proc.memory_info().rss - before


def test_worker_malloc_keeps_freed_memory_for_the_stage_and_gives_it_back(client) -> None:
    from fraud_dask.cluster.malloc import worker_malloc

    mib = 2**20
    # Dask's settings: each 4 MiB array is mapped and unmapped, nothing is kept once freed
    for grew, kept in client.run(_churn).values():
        assert grew >= 140 * mib
        assert kept < 20 * mib
    with worker_malloc(client, "512MiB", "256MiB") as done:
        assert sorted(done) == sorted(client.scheduler_info(n_workers=-1)["workers"])
        assert all(done.values())  # glibc on this machine
        inside = client.run(_churn)
        for grew, kept in inside.values():
            assert kept >= 0.8 * grew  # the freed arrays stay in the heap for reuse
        rss_inside = client.run(lambda: __import__("psutil").Process().memory_info().rss)
    # leaving the block gives the kept memory back and restores the workers' own settings
    rss_after = client.run(lambda: __import__("psutil").Process().memory_info().rss)
    for addr, (_grew, kept) in inside.items():
        assert rss_inside[addr] - rss_after[addr] >= 0.8 * kept
    for _grew, kept in client.run(_churn).values():
        assert kept < 20 * mib
    # None leaves the workers as they are
    with worker_malloc(client, None) as done:
        assert done == {}


def test_features_task_keeps_freed_memory_only_while_it_builds() -> None:
    from fraud_dask.config import compose

    task = compose(["task=features"]).task
    assert (task.worker_malloc_trim, task.worker_malloc_mmap) == ("64MiB", "16MiB")
    off = compose(["task=features", "task.worker_malloc_trim=null"]).task
    assert off.worker_malloc_trim is None
    with pytest.raises(Exception, match="worker_malloc_trim"):
        compose(["task=train", "task.worker_malloc_trim=1GiB"])


def test_local_cluster_of_threads_listens_on_tcp_for_notebooks() -> None:
    from fraud_dask.config import compose

    conf = compose(
        ["cluster.processes=false", "cluster.n_workers=1", "cluster.threads_per_worker=2",
         "cluster.dashboard_address=127.0.0.1:0"]
    ).cluster  # fmt: skip
    with connect(conf) as client:
        address = client.scheduler.address
        assert address.startswith("tcp://127.0.0.1:")
        # the workers are threads of this process
        pids = client.run(lambda: __import__("os").getpid())
        assert set(pids.values()) == {__import__("os").getpid()}
        # a second client (a notebook) attaches by the address
        from distributed import Client

        with Client(address, timeout="10s") as other:
            assert other.submit(sum, [1, 2]).result() == 3
