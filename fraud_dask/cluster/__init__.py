"""Cluster selection: the only place that starts or stops a Dask cluster.

A cluster is a spec: a kind and its options, one schema per kind (``LocalClusterConf``,
``GpuClusterConf``, ``ExistingClusterConf``, ``KubernetesClusterConf``). :func:`connect` turns
the spec into a running cluster and a :class:`distributed.Client`, as a context manager, and
tears down what it started (never what it merely connected to).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import MISSING

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
    """Schema shared by every option of the ``cluster`` group: its kind.

    Each kind has its own schema (:class:`LocalClusterConf`, :class:`GpuClusterConf`,
    :class:`ExistingClusterConf`, :class:`KubernetesClusterConf`), registered as the group's
    options (``configs/cluster/<option>.yaml`` names its schema in its defaults list), so a key
    that belongs to another kind (``cluster=local cluster.namespace=x``) fails at composition.
    """

    kind: ClusterKind = MISSING
    #: existing: the scheduler file to read when no address is given; the other kinds:
    #: where ``task=cluster`` publishes the cluster's address (null: the default file)
    scheduler_file: str | None = None


@dataclass
class LocalClusterConf(ClusterConf):
    """``cluster=local``: a :class:`distributed.LocalCluster` on this machine."""

    kind: ClusterKind = ClusterKind.local
    n_workers: int = 2
    threads_per_worker: int = 1
    #: per worker; ``auto``: Dask's share of the machine's memory (its cgroup limit where lower)
    #: for the worker's threads (memory x threads_per_worker / cores)
    memory_limit: str = "auto"
    processes: bool = True
    dashboard_address: str = "127.0.0.1:0"
    host: str = "127.0.0.1"
    #: environment of the worker processes, over Dask's ``distributed.nanny.pre-spawn-environ``
    #: (configs/cluster/local.yaml sets glibc's malloc thresholds; see there)
    worker_env: dict[str, str] = field(default_factory=dict)


@dataclass
class GpuClusterConf(ClusterConf):
    """``cluster=gpu``: :class:`dask_cuda.LocalCUDACluster`, one worker per visible GPU."""

    kind: ClusterKind = ClusterKind.gpu
    threads_per_worker: int = 1
    memory_limit: str = "16GiB"
    dashboard_address: str = "127.0.0.1:0"
    host: str = "127.0.0.1"
    #: fail instead of falling back to a local CPU cluster when there is no GPU
    require_gpu: bool = False
    rmm_pool_size: str | None = None


@dataclass
class ExistingClusterConf(ClusterConf):
    """``cluster=existing``: attach to a running scheduler (its address or scheduler file)."""

    kind: ClusterKind = ClusterKind.existing
    address: str | None = None
    tls_ca_file: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    timeout: str = "30s"


@dataclass
class KubernetesClusterConf(ClusterConf):
    """``cluster=kubernetes``: a DaskCluster from ``manifest``, through the dask operator."""

    kind: ClusterKind = ClusterKind.kubernetes
    name: str = "fraud-dask"
    namespace: str = "default"
    manifest: str = "cluster/kubernetes/daskcluster-cpu.yaml"
    image: str | None = None
    n_workers: int = 4
    worker_cores: float = 2.0
    worker_memory: str = "8GiB"
    require_gpu: bool = False
    shutdown_on_close: bool = True
    tls_ca_file: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None


#: the schema of each kind (the ``cluster`` group's options are registered from it)
CLUSTER_CONFS: dict[ClusterKind, type[ClusterConf]] = {
    ClusterKind.local: LocalClusterConf,
    ClusterKind.gpu: GpuClusterConf,
    ClusterKind.existing: ExistingClusterConf,
    ClusterKind.kubernetes: KubernetesClusterConf,
}


def register_cluster_schemas() -> None:
    """Register each kind's schema as ``schema/cluster/<kind>`` in Hydra's ConfigStore.

    ``configs/cluster/<option>.yaml`` starts with ``defaults: [/schema/cluster/<kind>@_here_,
    _self_]``: its values are merged onto that schema, so a key of another kind is an error.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for kind, schema in CLUSTER_CONFS.items():
        store.store(group="schema/cluster", name=str(kind), node=schema)


def typed_cluster_conf(conf: ClusterConf | Any) -> ClusterConf:
    """The per-kind dataclass of a ``cluster`` node (a composed DictConfig is converted).

    Notebooks and scripts may hand :func:`connect` the composed node itself; everything below
    works on the dataclass.
    """
    from omegaconf import OmegaConf

    if OmegaConf.is_config(conf):
        conf = OmegaConf.to_object(conf)
    if not isinstance(conf, ClusterConf):
        raise TypeError(f"cluster: got {type(conf).__name__}, expected a ClusterConf schema")
    return conf


def check_cluster_conf(conf: ClusterConf | Any) -> None:
    """Check the ``cluster`` values that can be known before a cluster starts.

    A LocalCluster with no worker waits forever for one, and a bad size or port fails only
    deep inside distributed: these are caught here, one line naming the field.

    Parameters
    ----------
    conf : ClusterConf
        The ``cluster`` node: one of the per-kind schemas (a dataclass or its DictConfig).

    Raises
    ------
    UserError
        A count, size, duration, address or file that cannot work (the field is named), or a
        ``kind`` that is not its option's (``cluster=local cluster.kind=gpu``).
    """
    from dask.utils import parse_bytes, parse_timedelta

    from fraud_dask.errors import UserError

    def bad(name: str, got: Any, expected: str) -> UserError:
        return UserError(f"cluster.{name}: got {got!r}, expected {expected}")

    conf = typed_cluster_conf(conf)
    kind = ClusterKind(conf.kind)
    if type(conf) is not CLUSTER_CONFS[kind]:
        raise bad("kind", str(kind), f"the kind of its option; choose cluster={kind} instead")
    counts: dict[str, Any] = {}
    if isinstance(conf, LocalClusterConf):
        counts = {"n_workers": conf.n_workers, "threads_per_worker": conf.threads_per_worker}
    elif isinstance(conf, GpuClusterConf):
        counts = {"threads_per_worker": conf.threads_per_worker}
    elif isinstance(conf, KubernetesClusterConf):
        counts = {"n_workers": conf.n_workers}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad(name, value, "a positive integer")
    if isinstance(conf, LocalClusterConf | GpuClusterConf):
        memory = conf.memory_limit
        if memory not in (None, "auto"):
            try:
                ok = parse_bytes(memory) >= 0 if isinstance(memory, str) else float(memory) >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise bad("memory_limit", memory, "a size such as 4GiB, 'auto' or 0 (no limit)")
        dashboard = conf.dashboard_address
        if dashboard not in (None, ""):
            _, sep, port = str(dashboard).rpartition(":")
            if not (port.isdigit() and int(port) <= 65535):
                raise bad("dashboard_address", dashboard, "HOST:PORT or :PORT with a port 0-65535")
    if isinstance(conf, KubernetesClusterConf):
        try:
            ok = parse_bytes(conf.worker_memory) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise bad("worker_memory", conf.worker_memory, "a positive size such as 8GiB")
        cores = conf.worker_cores
        if isinstance(cores, bool) or not isinstance(cores, int | float) or not cores > 0:
            raise bad("worker_cores", cores, "a positive number of cores")
    if isinstance(conf, ExistingClusterConf):
        try:
            ok = parse_timedelta(conf.timeout) > 0
        except (TypeError, ValueError, KeyError):
            ok = False
        if not ok:
            raise bad("timeout", conf.timeout, "a positive duration such as 30s")
        for name in ("scheduler_file", "tls_ca_file", "tls_client_cert", "tls_client_key"):
            path = getattr(conf, name)
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


def _local_cluster(conf: LocalClusterConf) -> Any:
    import dask
    from distributed import LocalCluster

    # Set before each worker process starts (glibc reads MALLOC_* at start-up; the nanny's
    # ``env`` argument would only reach os.environ once the worker runs). The nanny takes a
    # pre-spawn variable from this process's environment when it is set there (an earlier
    # cluster leaves Dask's defaults behind), so the configured values go there too while the
    # workers are created; a nanny keeps them for the restarts of its worker.
    key = "distributed.nanny.pre-spawn-environ"
    wanted = {str(k): str(v) for k, v in conf.worker_env.items()}
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        with dask.config.set({key: {**dask.config.get(key, default={}), **wanted}}):
            return LocalCluster(
                n_workers=int(conf.n_workers),
                threads_per_worker=int(conf.threads_per_worker),
                memory_limit=conf.memory_limit,
                processes=bool(conf.processes),
                # threads in this process: still a TCP scheduler on ``host`` (Dask's default
                # there is ``inproc://``, which a notebook or a second client cannot reach)
                **({} if conf.processes else {"protocol": "tcp://"}),
                host=conf.host,
                dashboard_address=conf.dashboard_address,
                silence_logs=logging.ERROR,
            )
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def gpu_count() -> int:
    """Number of CUDA devices NVML sees on this machine; 0 when there is no GPU or no driver."""
    from distributed.diagnostics import nvml

    try:
        return int(nvml.device_get_count())
    except Exception:  # NVML missing or broken is "no GPU", a state, not an error
        return 0


def _gpu_cluster(conf: GpuClusterConf) -> Any:
    reason = None
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:
        reason = f"dask-cuda is not installed ({exc}); install the 'gpu' extra"
    else:
        if gpu_count() == 0:
            reason = "no CUDA device is visible on this machine (NVML reports 0 GPUs)"
    if reason is not None:
        if conf.require_gpu:
            raise RuntimeError(f"cluster=gpu with cluster.require_gpu=true, but {reason}")
        warnings.warn(
            f"cluster=gpu: {reason}; falling back to cluster=local "
            "(set cluster.require_gpu=true to fail instead)",
            RuntimeWarning,
            stacklevel=3,
        )
        log.warning("cluster=gpu: %s; falling back to a local CPU cluster", reason)
        return _local_cluster(
            LocalClusterConf(
                threads_per_worker=conf.threads_per_worker,
                memory_limit=conf.memory_limit,
                dashboard_address=conf.dashboard_address,
                host=conf.host,
            )
        )
    kwargs: dict[str, Any] = {
        "threads_per_worker": int(conf.threads_per_worker),
        "memory_limit": conf.memory_limit,
        "dashboard_address": conf.dashboard_address,
        "host": conf.host,
        "silence_logs": logging.ERROR,
    }
    if conf.rmm_pool_size:
        kwargs["rmm_pool_size"] = conf.rmm_pool_size
    return LocalCUDACluster(**kwargs)


def _security(conf: ExistingClusterConf) -> Any:
    ca, cert, key = conf.tls_ca_file, conf.tls_client_cert, conf.tls_client_key
    if not (ca or cert or key):
        return None
    missing = [n for n, v in (("tls_ca_file", ca), ("tls_client_cert", cert)) if not v]
    if missing:
        raise ValueError(f"cluster TLS needs {', '.join('cluster.' + m for m in missing)} as well")
    from distributed.security import Security

    return Security(
        tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True
    )


def existing_address(conf: ExistingClusterConf) -> str:
    """The scheduler address for ``cluster=existing``: the config, else the scheduler file."""
    if conf.address:
        return str(conf.address)
    path = Path(conf.scheduler_file or default_scheduler_file()).expanduser()
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


def _size(limit: Any) -> str:
    """A worker's memory limit in bytes as text (none: no limit)."""
    from dask.utils import format_bytes

    return format_bytes(int(limit)) if limit else "none"


def dashboard_link(client: Client) -> str:
    """The dashboard URL of the connected scheduler ('' when it has none)."""
    try:
        return str(client.dashboard_link)
    except Exception:  # a scheduler without the dashboard service
        return ""


@contextlib.contextmanager
def connect(conf: ClusterConf | Any) -> Iterator[Client]:
    """Start (or attach to) the cluster described by ``conf`` and yield a connected Client.

    Parameters
    ----------
    conf : ClusterConf
        The ``cluster`` node: a per-kind schema (:class:`LocalClusterConf`,
        :class:`GpuClusterConf`, :class:`ExistingClusterConf`, :class:`KubernetesClusterConf`),
        as a dataclass or as the composed DictConfig.

    Yields
    ------
    distributed.Client
        Closed on exit; a cluster started here is shut down, an existing one is left running.
    """
    from distributed import Client

    conf = typed_cluster_conf(conf)
    cluster: Any = None
    if isinstance(conf, LocalClusterConf):
        cluster = _local_cluster(conf)
    elif isinstance(conf, GpuClusterConf):
        cluster = _gpu_cluster(conf)
    elif isinstance(conf, KubernetesClusterConf):
        from fraud_dask.cluster.kubernetes import make_kube_cluster

        cluster = make_kube_cluster(conf)
    elif not isinstance(conf, ExistingClusterConf):
        raise TypeError(f"cluster: {type(conf).__name__} is not one of the per-kind schemas")
    try:
        if isinstance(conf, ExistingClusterConf):
            address = existing_address(conf)
            client = Client(address, security=_security(conf), timeout=conf.timeout)
        else:
            client = Client(cluster)
        with client:
            info = client.scheduler_info(n_workers=-1)
            limits = {w.get("memory_limit") for w in info.get("workers", {}).values()}
            log.info(
                "cluster=%s scheduler=%s workers=%d memory_limit=%s dashboard=%s",
                conf.kind,
                info.get("address", "?"),
                len(info.get("workers", {})),
                ",".join(_size(m) for m in sorted(limits, key=lambda m: m or 0)) or "?",
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


def scheduler_workers(client: Client) -> dict[str, Any]:
    """The scheduler's workers now (address -> info), asked directly.

    ``client.scheduler_info()`` returns the client's cache, which its periodic refresh can
    replace, between the fetch and the return, with a copy that lists no worker (seen under
    load: a healthy fit's workers taken for lost, an empty worker list).
    """
    scheduler = client.scheduler
    if scheduler is None:
        raise RuntimeError("the client is not connected to a scheduler")
    return dict(client.sync(scheduler.identity, n_workers=-1)["workers"])


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
