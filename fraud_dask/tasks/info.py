"""``task=info``: library versions, this machine, and the cluster a run would use.

It starts no cluster (``NEEDS_CLUSTER``): for ``cluster=local`` and ``cluster=gpu`` it reports
what a run would start (workers, threads, memory limit) and what this machine has (CPUs, memory,
CUDA devices), and resolves ``model.device`` from the GPUs NVML sees here, where those workers
would run. With ``cluster=existing`` it attaches to the running scheduler and reports its workers
as they are (threads, memory, GPUs per worker, the device they resolve to). For
``cluster=kubernetes`` the device is resolved on the workers when a run starts them.

Example::

    python -m fraud_dask task=info
    python -m fraud_dask task=info cluster=existing   # a cluster started by scripts/start-cluster
"""

from __future__ import annotations

import logging
import os
import platform
from typing import TYPE_CHECKING, Any

from fraud_dask.cluster import (
    Device,
    ExistingClusterConf,
    GpuClusterConf,
    KubernetesClusterConf,
    LocalClusterConf,
    connect,
    dashboard_link,
    resolve_device,
    worker_gpus,
)
from fraud_dask.tasks import task_entry

if TYPE_CHECKING:
    from distributed import Client

    from fraud_dask.config import Config

log = logging.getLogger(__name__)


#: reads versions and this machine's resources; attaches only to an existing cluster
NEEDS_CLUSTER = False


def library_versions() -> dict[str, str]:
    """Python's version and those of the libraries a run depends on (installed here)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


#: the distributions :func:`library_versions` reports, in this order
LIBRARIES = (
    "fraud_dask",
    "dask",
    "distributed",
    "xgboost",
    "pandas",
    "numpy",
    "pyarrow",
    "scikit-learn",
    "fsspec",
    "hydra-core",
    "bokeh",
    "aiohttp",
    "dask-cuda",
    "dask-kubernetes",
)


def _workers(client: Client, requested: Device) -> dict[str, Any]:
    """The attached cluster as its workers report it."""
    info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {})
    return {
        "scheduler": info.get("address"),
        "dashboard": dashboard_link(client),
        "n_workers": len(workers),
        "threads": int(sum(w.get("nthreads", 0) for w in workers.values())),
        "memory_limit_bytes": int(sum(w.get("memory_limit", 0) or 0 for w in workers.values())),
        "gpus_per_worker": worker_gpus(client),
        "device": resolve_device(client, requested),
    }


def _planned(cfg: Config, gpus: int) -> dict[str, Any]:
    """What a run would start, from the cluster config, and the device it would resolve to."""
    conf = cfg.cluster
    out: dict[str, Any] = {}
    if isinstance(conf, LocalClusterConf):
        out |= {
            "n_workers": conf.n_workers,
            "threads_per_worker": conf.threads_per_worker,
            "memory_limit": conf.memory_limit,
        }
    elif isinstance(conf, GpuClusterConf):
        out |= {"n_workers": gpus, "memory_limit": conf.memory_limit}
    elif isinstance(conf, KubernetesClusterConf):
        out |= {
            "n_workers": conf.n_workers,
            "worker_cores": conf.worker_cores,
            "worker_memory": conf.worker_memory,
        }
    requested = Device(cfg.model.device)
    if isinstance(conf, KubernetesClusterConf) and requested is Device.auto:
        device = "resolved on the workers when a run starts them"
    elif requested is Device.auto:
        device = "cuda" if gpus else "cpu"
        log.info("device=auto would resolve to %s (%d CUDA devices on this machine)", device, gpus)
    else:
        device = str(requested)
    return out | {"device": device}


@task_entry
def run(cfg: Config, client: Client | None) -> dict[str, Any]:
    """Library versions, this machine's resources and the cluster a run would use.

    Parameters
    ----------
    cfg : Config
        Uses ``cfg.cluster`` (its kind and sizes) and ``cfg.model.device``.
    client : distributed.Client or None
        None from the CLI (the task starts no cluster); a given client is described as
        ``cluster=existing`` would be.

    Returns
    -------
    dict
        ``cluster`` (the kind), ``versions``, ``machine`` (``cpus``, ``memory_bytes``,
        ``gpus``), the planned or attached workers (``n_workers``, threads, memory) and
        ``device``; attached: ``scheduler``, ``dashboard`` and ``gpus_per_worker`` too.
    """
    import psutil

    from fraud_dask.cluster import gpu_count

    gpus = gpu_count()
    result: dict[str, Any] = {
        "cluster": str(cfg.cluster.kind),
        "machine": {
            "cpus": os.cpu_count() or 0,
            "memory_bytes": int(psutil.virtual_memory().total),
            "gpus": gpus,
        },
    }
    if client is not None:
        result |= _workers(client, Device(cfg.model.device))
    elif isinstance(cfg.cluster, ExistingClusterConf):
        with connect(cfg.cluster) as attached:
            result |= _workers(attached, Device(cfg.model.device))
    else:
        result |= _planned(cfg, gpus)
    result["versions"] = library_versions()
    log.info(
        "cluster=%s: %s workers, device=%s; fraud_dask %s, dask %s, xgboost %s",
        result["cluster"],
        result.get("n_workers", "?"),
        result["device"],
        result["versions"].get("fraud_dask"),
        result["versions"].get("dask"),
        result["versions"].get("xgboost"),
    )
    return result
