"""``task=info``: what the connected cluster has (workers, threads, memory, GPUs, versions)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fraud_dask.cluster import dashboard_link, resolve_device, worker_gpus
from fraud_dask.tasks import task_entry

if TYPE_CHECKING:
    from fraud_dask.config import Config

log = logging.getLogger(__name__)


@task_entry
def run(cfg: Config, client: Any) -> dict[str, Any]:
    """Describe the cluster and resolve ``model.device`` against what the workers report."""
    info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {})
    gpus = worker_gpus(client)
    device = resolve_device(client, str(cfg.model.device))
    versions = client.get_versions(check=False)["client"]["packages"]
    result = {
        "scheduler": client.scheduler.address,
        "dashboard": dashboard_link(client),
        "n_workers": len(workers),
        "threads": int(sum(w.get("nthreads", 0) for w in workers.values())),
        "memory_limit_bytes": int(sum(w.get("memory_limit", 0) or 0 for w in workers.values())),
        "gpus_per_worker": gpus,
        "device": device,
        "versions": {k: v for k, v in versions.items() if v is not None},
    }
    log.info(
        "%d workers, %d threads, %.1f GiB, device=%s",
        result["n_workers"],
        result["threads"],
        result["memory_limit_bytes"] / 2**30,
        device,
    )
    return result
