"""Cluster selection: the only place that starts or stops a Dask cluster.

A cluster is a spec (``ClusterConf``: a kind plus its options). :func:`connect` turns the spec into
a running cluster and a :class:`distributed.Client`, as a context manager, and tears down what it
started (never what it merely connected to).

Kinds
-----
``local``       :class:`distributed.LocalCluster` sized from the config; dashboard on 127.0.0.1.
``existing``    connect to a running scheduler (address, or the scheduler file that
                ``scripts/start-cluster`` writes), optionally over TLS.
``gpu``         :class:`dask_cuda.LocalCUDACluster`, one worker per GPU; without a GPU (or without
                dask-cuda) a warning and a fall back to ``local``, or an error when
                ``require_gpu`` is set.
``kubernetes``  :class:`dask_kubernetes.operator.KubeCluster` from a DaskCluster manifest under
                ``cluster/kubernetes/`` (see :mod:`fraud_dask.cluster.kubernetes`).
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

SCHEDULER_FILE_ENV = "FRAUD_DASK_SCHEDULER_FILE"


class ClusterKind(enum.StrEnum):
    """Where the work runs (``cluster.kind``)."""

    local = "local"
    existing = "existing"
    gpu = "gpu"
    kubernetes = "kubernetes"


class Device(enum.StrEnum):
    """The device XGBoost trains on, resolved once against the workers (``model.device``)."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@dataclass
class ClusterConf:
    """Schema of the ``cluster`` config group (one class, every kind's options)."""

    kind: ClusterKind = ClusterKind.local
    # local / gpu
    n_workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str = "4GiB"
    processes: bool = True
    dashboard_address: str = "127.0.0.1:0"
    host: str = "127.0.0.1"
    # gpu
    require_gpu: bool = False
    rmm_pool_size: str | None = None
    # existing
    address: str | None = None
    scheduler_file: str | None = None
    tls_ca_file: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    timeout: str = "30s"
    # kubernetes
    name: str = "fraud-dask"
    namespace: str = "default"
    manifest: str = "cluster/kubernetes/daskcluster-cpu.yaml"
    image: str | None = None
    worker_cores: float = 2.0
    worker_memory: str = "8GiB"
    shutdown_on_close: bool = True


def check_cluster_conf(conf: Any) -> None:
    """Check the ``cluster`` values that can be known before a cluster starts.

    A LocalCluster with no worker waits forever for one, and a bad size or port fails only
    deep inside distributed: these are caught here, one line naming the field.

    Parameters
    ----------
    conf : ClusterConf or DictConfig
        The ``cluster`` config node.

    Raises
    ------
    UserError
        A count, size, duration, address or file that cannot work (the field is named).
    """
    from dask.utils import parse_bytes, parse_timedelta

    from fraud_dask.errors import UserError

    def bad(name: str, got: Any, expected: str) -> UserError:
        return UserError(f"cluster.{name}: got {got!r}, expected {expected}")

    kind = ClusterKind(_get(conf, "kind", "local"))
    for name in ("n_workers", "threads_per_worker"):
        value = _get(conf, name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad(name, value, "a positive integer")
    memory = _get(conf, "memory_limit", "auto")
    if memory not in (None, "auto"):
        try:
            ok = parse_bytes(memory) >= 0 if isinstance(memory, str) else float(memory) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise bad("memory_limit", memory, "a size such as 4GiB, 'auto' or 0 (no limit)")
    worker_memory = _get(conf, "worker_memory", "8GiB")
    try:
        ok = parse_bytes(worker_memory) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise bad("worker_memory", worker_memory, "a positive size such as 8GiB")
    cores = _get(conf, "worker_cores", 1.0)
    if isinstance(cores, bool) or not isinstance(cores, int | float) or not cores > 0:
        raise bad("worker_cores", cores, "a positive number of cores")
    timeout = _get(conf, "timeout", "30s")
    try:
        ok = parse_timedelta(timeout) > 0
    except (TypeError, ValueError, KeyError):
        ok = False
    if not ok:
        raise bad("timeout", timeout, "a positive duration such as 30s")
    dashboard = _get(conf, "dashboard_address")
    if dashboard not in (None, ""):
        _, sep, port = str(dashboard).rpartition(":")
        if not (port.isdigit() and int(port) <= 65535):
            raise bad("dashboard_address", dashboard, "HOST:PORT or :PORT with a port 0-65535")
    if kind is ClusterKind.existing:
        for name in ("scheduler_file", "tls_ca_file", "tls_client_cert", "tls_client_key"):
            path = _get(conf, name)
            if path and not Path(str(path)).expanduser().is_file():
                raise bad(name, path, "an existing file")


def default_scheduler_file() -> Path:
    """Where a long-lived cluster publishes its address (``$FRAUD_DASK_SCHEDULER_FILE`` wins).

    The file is a Dask scheduler file: JSON with at least ``address``.
    """
    env = os.environ.get(SCHEDULER_FILE_ENV)
    if env:
        return Path(env).expanduser()
    return data_home() / "scheduler.json"


def data_home() -> Path:
    """fraud_dask's data directory: ``$FRAUD_DASK_HOME`` or ``~/.local/share/fraud_dask``."""
    env = os.environ.get("FRAUD_DASK_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "fraud_dask"


def _get(conf: Any, key: str, default: Any = None) -> Any:
    value = getattr(conf, key, default)
    return value.value if isinstance(value, enum.Enum) else value


def _local_cluster(conf: Any) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=int(_get(conf, "n_workers", 2)),
        threads_per_worker=int(_get(conf, "threads_per_worker", 1)),
        memory_limit=_get(conf, "memory_limit", "4GiB"),
        processes=bool(_get(conf, "processes", True)),
        host=_get(conf, "host", "127.0.0.1"),
        dashboard_address=_get(conf, "dashboard_address", "127.0.0.1:0"),
        silence_logs=logging.ERROR,
    )


def gpu_count() -> int:
    """Number of CUDA devices NVML sees on this machine; 0 when there is no GPU or no driver."""
    from distributed.diagnostics import nvml

    try:
        return int(nvml.device_get_count())
    except Exception:  # NVML missing or broken is "no GPU", a state, not an error
        return 0


def _gpu_cluster(conf: Any) -> Any:
    require = bool(_get(conf, "require_gpu", False))
    reason = None
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:
        reason = f"dask-cuda is not installed ({exc}); install the 'gpu' extra"
    else:
        if gpu_count() == 0:
            reason = "no CUDA device is visible on this machine (NVML reports 0 GPUs)"
    if reason is not None:
        if require:
            raise RuntimeError(f"cluster=gpu with cluster.require_gpu=true, but {reason}")
        warnings.warn(
            f"cluster=gpu: {reason}; falling back to cluster=local "
            "(set cluster.require_gpu=true to fail instead)",
            RuntimeWarning,
            stacklevel=3,
        )
        log.warning("cluster=gpu: %s; falling back to a local CPU cluster", reason)
        return _local_cluster(conf)
    kwargs: dict[str, Any] = {
        "threads_per_worker": int(_get(conf, "threads_per_worker", 1)),
        "memory_limit": _get(conf, "memory_limit", "4GiB"),
        "dashboard_address": _get(conf, "dashboard_address", "127.0.0.1:0"),
        "host": _get(conf, "host", "127.0.0.1"),
        "silence_logs": logging.ERROR,
    }
    if _get(conf, "rmm_pool_size"):
        kwargs["rmm_pool_size"] = _get(conf, "rmm_pool_size")
    return LocalCUDACluster(**kwargs)


def _security(conf: Any) -> Any:
    ca = _get(conf, "tls_ca_file")
    cert = _get(conf, "tls_client_cert")
    key = _get(conf, "tls_client_key")
    if not (ca or cert or key):
        return None
    missing = [n for n, v in (("tls_ca_file", ca), ("tls_client_cert", cert)) if not v]
    if missing:
        raise ValueError(f"cluster TLS needs {', '.join('cluster.' + m for m in missing)} as well")
    from distributed.security import Security

    return Security(
        tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True
    )


def existing_address(conf: Any) -> str:
    """The scheduler address for ``cluster=existing``: the config, else the scheduler file."""
    address = _get(conf, "address")
    if address:
        return str(address)
    path = Path(_get(conf, "scheduler_file") or default_scheduler_file()).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"cluster=existing: no cluster.address given and no scheduler file at {path}; "
            "start one with scripts/start-cluster or pass cluster.address=tcp://HOST:PORT"
        )
    try:
        info = json.loads(path.read_text())
        return str(info["address"])
    except (ValueError, KeyError) as exc:
        raise ValueError(f"scheduler file {path} has no 'address' ({exc})") from exc


def dashboard_link(client: Client) -> str:
    """The dashboard URL of the connected scheduler ('' when it has none)."""
    try:
        return str(client.dashboard_link)
    except Exception:  # a scheduler without the dashboard service
        return ""


@contextlib.contextmanager
def connect(conf: Any) -> Iterator[Client]:
    """Start (or attach to) the cluster described by ``conf`` and yield a connected Client.

    Parameters
    ----------
    conf : ClusterConf or DictConfig
        The ``cluster`` config node.

    Yields
    ------
    distributed.Client
        Closed on exit; a cluster started here is shut down, an existing one is left running.
    """
    from distributed import Client

    kind = ClusterKind(_get(conf, "kind", "local"))
    cluster: Any = None
    if kind is ClusterKind.local:
        cluster = _local_cluster(conf)
    elif kind is ClusterKind.gpu:
        cluster = _gpu_cluster(conf)
    elif kind is ClusterKind.kubernetes:
        from fraud_dask.cluster.kubernetes import make_kube_cluster

        cluster = make_kube_cluster(conf)
    try:
        if cluster is not None:
            client = Client(cluster)
        else:
            address = existing_address(conf)
            client = Client(address, security=_security(conf), timeout=_get(conf, "timeout"))
        with client:
            info = client.scheduler_info(n_workers=-1)
            log.info(
                "cluster=%s scheduler=%s workers=%d dashboard=%s",
                kind.value,
                info.get("address", "?"),
                len(info.get("workers", {})),
                dashboard_link(client) or "(none)",
            )
            yield client
    finally:
        if cluster is not None:
            cluster.close()


def _worker_cuda_devices() -> int:
    """Run on a worker: how many CUDA devices it can use (0 without cupy, driver or GPU)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no cupy, no driver or no device: all mean "no GPU here"
        return 0


def worker_gpus(client: Client) -> dict[str, int]:
    """CUDA device count per worker, as the workers themselves report it."""
    return {str(k): int(v) for k, v in client.run(_worker_cuda_devices).items()}


def resolve_device(client: Client, requested: str | Device = "auto") -> str:
    """Resolve ``auto|cpu|cuda`` into the device XGBoost gets, by asking the workers.

    ``auto`` gives ``cuda`` when every worker has a CUDA device and ``cpu`` otherwise; ``cuda``
    without a GPU on every worker is an error (XGBoost would silently train on CPU).
    """
    req = Device(requested)
    if req is Device.cpu:
        log.info("device=cpu (requested)")
        return "cpu"
    gpus = worker_gpus(client)
    with_gpu = [w for w, n in gpus.items() if n > 0]
    all_gpu = bool(gpus) and len(with_gpu) == len(gpus)
    if req is Device.cuda:
        if not all_gpu:
            without = sorted(set(gpus) - set(with_gpu))
            raise RuntimeError(
                f"model.device=cuda but {len(without)} of {len(gpus)} workers have no CUDA "
                f"device ({', '.join(without[:4])}{'...' if len(without) > 4 else ''}); "
                "use model.device=auto or cpu, or cluster=gpu on a machine with GPUs"
            )
        log.info("device=cuda (requested; %d workers with GPUs)", len(gpus))
        return "cuda"
    device = "cuda" if all_gpu else "cpu"
    log.info(
        "device=auto resolved to %s (%d of %d workers report a CUDA device)",
        device,
        len(with_gpu),
        len(gpus),
    )
    return device
