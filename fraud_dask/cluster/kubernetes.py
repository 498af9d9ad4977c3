"""Dask on Kubernetes: DaskCluster manifests, their validation, and the operator's KubeCluster.

Everything here except :func:`make_kube_cluster` is pure and offline: it reads YAML files and the
DaskCluster CRD schema shipped inside ``dask_kubernetes``, and never talks to a Kubernetes API
server. ``dask_kubernetes`` (the ``kubernetes`` extra) is imported inside functions only.

The manifests under ``cluster/kubernetes/`` secure every Dask connection with TLS. The operator
itself assumes plain ``tcp://`` (it injects a ``tcp://`` scheduler address into workers, and
``KubeCluster`` talks to the scheduler without credentials), so the manifests set the workers'
``DASK_SCHEDULER_ADDRESS`` themselves and :func:`make_kube_cluster` gives ``KubeCluster`` the
client's TLS credentials.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from fraud_dask.cluster import KubernetesClusterConf

REPO_ROOT = Path(__file__).resolve().parents[2]
API_VERSION = "kubernetes.dask.org/v1"
KIND = "DaskCluster"
GPU_RESOURCE = "nvidia.com/gpu"
VARIANT_LABEL = "fraud-dask/variant"
SCHEDULER_PORT = 8786
CRD_PATH = "operator/deployment/helm/dask-kubernetes-operator/crds/daskcluster.yaml"
# RFC 1123 label, as the operator requires for DaskCluster names (dask_kubernetes.constants).
_NAME_RE = re.compile(r"^(?=.{1,53}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Dask's TLS settings every container needs, by role (values are file paths in the container).
TLS_ENV_COMMON = (
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
)
TLS_ENV_ROLE = {
    "scheduler": (
        "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT",
        "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY",
    ),
    "worker": (
        "DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT",
        "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY",
    ),
}


def resolve_manifest(path: str | Path) -> Path:
    """Find a manifest: as given (absolute or from the cwd), else relative to the repository root.

    Parameters
    ----------
    path : str or Path
        e.g. ``"cluster/kubernetes/daskcluster-cpu.yaml"``.

    Returns
    -------
    Path
        The existing file.
    """
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return candidate
    if not candidate.is_absolute() and (REPO_ROOT / candidate).is_file():
        return REPO_ROOT / candidate
    raise FileNotFoundError(
        f"DaskCluster manifest {str(path)!r} not found (looked in {Path.cwd()} and {REPO_ROOT})"
    )


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read one DaskCluster manifest (a single YAML document) into a dict.

    Parameters
    ----------
    path : str or Path
        Absolute, relative to the cwd, or relative to the repository root.

    Returns
    -------
    dict
        The resource as written; not validated (see :func:`validate_cluster_spec`).
    """
    resolved = resolve_manifest(path)
    try:
        doc = yaml.safe_load(resolved.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{resolved}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{resolved}: expected a YAML mapping (a DaskCluster), got {type(doc)}")
    return doc


@functools.lru_cache(maxsize=1)
def crd_schema() -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the DaskCluster CRD shipped in the installed dask_kubernetes."""
    from importlib.resources import files

    crd = yaml.safe_load((files("dask_kubernetes") / CRD_PATH).read_text())
    (version,) = (v for v in crd["spec"]["versions"] if v["name"] == API_VERSION.split("/")[1])
    return dict(version["schema"]["openAPIV3Schema"])


def k8s_memory(value: str | int) -> str:
    """Convert a Dask memory size (``"8GiB"``, ``"512MB"``, bytes) into a Kubernetes quantity."""
    from dask.utils import parse_bytes

    nbytes = parse_bytes(value)
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if nbytes % size == 0:
            return f"{nbytes // size}{unit}"
    return str(nbytes)


def k8s_cpu(cores: float) -> str:
    """Convert a core count into a Kubernetes CPU quantity (``2`` -> ``"2"``, 0.5 -> ``"500m"``)."""
    millis = round(float(cores) * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def scheduler_address(name: str, namespace: str, port: int = SCHEDULER_PORT) -> str:
    """The in-cluster TLS address of a DaskCluster's scheduler Service."""
    return f"tls://{name}-scheduler.{namespace}.svc.cluster.local:{port}"


def _set_arg(args: list[str], flag: str, value: str) -> None:
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args.extend([flag, value])


def _set_env(container: dict[str, Any], name: str, value: str) -> None:
    env = container.setdefault("env", [])
    for item in env:
        if item.get("name") == name:
            item["value"] = value
            item.pop("valueFrom", None)
            return
    env.append({"name": name, "value": value})


def is_gpu_spec(spec: dict[str, Any]) -> bool:
    """Whether a DaskCluster is the GPU variant (label ``fraud-dask/variant: gpu``)."""
    return (spec.get("metadata") or {}).get("labels", {}).get(VARIANT_LABEL) == "gpu"


def build_cluster_spec(conf: KubernetesClusterConf) -> dict[str, Any]:
    """Load the DaskCluster manifest named by ``conf`` and apply the config's overrides.

    Parameters
    ----------
    conf : KubernetesClusterConf
        The ``cluster`` config node. Used: ``manifest``, ``name``, ``namespace``, ``image``
        (None keeps the manifest's), ``n_workers``, ``worker_cores``, ``worker_memory``
        (Dask size such as ``"8GiB"``), ``require_gpu``.

    Returns
    -------
    dict
        A validated DaskCluster resource; the GPU variant keeps its ``nvidia.com/gpu`` requests.

    Raises
    ------
    ValueError
        When the result is not a valid DaskCluster (the message names the path in the spec).
    """
    source = str(conf.manifest)
    spec = copy.deepcopy(load_manifest(source))
    name, namespace, image = str(conf.name), str(conf.namespace), conf.image
    n_workers, cores, memory = conf.n_workers, conf.worker_cores, conf.worker_memory

    meta = spec.setdefault("metadata", {})
    meta["name"] = name
    meta["namespace"] = namespace
    body: dict[str, Any] = spec["spec"] if isinstance(spec.get("spec"), dict) else {}
    scheduler = body.get("scheduler") or {}
    worker = body.get("worker") or {}
    service = scheduler.get("service") or {}
    if isinstance(service.get("selector"), dict):
        service["selector"]["dask.org/cluster-name"] = name
    if n_workers is not None:
        worker["replicas"] = int(n_workers)
    for role, part in (("scheduler", scheduler), ("worker", worker)):
        for container in (part.get("spec") or {}).get("containers") or []:
            if image:
                container["image"] = str(image)
            if role != "worker":
                continue
            _set_env(container, "DASK_SCHEDULER_ADDRESS", scheduler_address(name, namespace))
            args = container.setdefault("args", [])
            resources = container.setdefault("resources", {})
            for kind in ("requests", "limits"):
                resources.setdefault(kind, {})
                if cores is not None:
                    resources[kind]["cpu"] = k8s_cpu(cores)
                if memory is not None:
                    resources[kind]["memory"] = k8s_memory(memory)
            if cores is not None and float(cores) > 0:
                _set_arg(args, "--nthreads", str(max(1, int(float(cores)))))
            if memory is not None:
                _set_arg(args, "--memory-limit", str(memory))
    validate_cluster_spec(spec, source=source, require_gpu=bool(conf.require_gpu))
    return spec


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<root>"


def _schema_errors(spec: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(crd_schema())
    errors = sorted(validator.iter_errors(spec), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_path(e.absolute_path)}: {e.message} (DaskCluster CRD schema)" for e in errors]


def _container_errors(
    where: str, container: dict[str, Any], role: str, gpu: bool, spec: dict[str, Any]
) -> list[str]:
    errors: list[str] = []
    image = container.get("image")
    if not isinstance(image, str) or not image.strip():
        errors.append(f"{where}.image: got {image!r}, expected a container image")
    elif ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        errors.append(f"{where}.image: got {image!r}, expected an explicit tag or digest")
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        have = resources.get(kind) or {}
        for res in ("cpu", "memory"):
            if not have.get(res):
                errors.append(f"{where}.resources.{kind}.{res}: missing")
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    if role == "worker":
        args = [str(a) for a in container.get("args") or []]
        cuda_cmd = args[:3] == ["dask", "cuda", "worker"] or args[:1] == ["dask-cuda-worker"]
        if gpu:
            for kind, have in (("requests", requests), ("limits", limits)):
                try:
                    ok = int(str(have.get(GPU_RESOURCE, "0"))) >= 1
                except ValueError:
                    ok = False
                if not ok:
                    errors.append(
                        f"{where}.resources.{kind}.{GPU_RESOURCE}: got "
                        f"{have.get(GPU_RESOURCE)!r}, expected at least 1 on the GPU variant"
                    )
            if not cuda_cmd:
                errors.append(f"{where}.args: got {args[:3]}, expected 'dask cuda worker'")
        elif GPU_RESOURCE in limits or GPU_RESOURCE in requests:
            errors.append(f"{where}.resources: {GPU_RESOURCE} requested on the CPU variant")
    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    wanted = TLS_ENV_COMMON + TLS_ENV_ROLE[role]
    for key in wanted:
        if not env.get(key):
            errors.append(f"{where}.env: missing {key} (Dask TLS)")
    if str(env.get("DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION", "")).lower() != "true":
        errors.append(f"{where}.env: DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION must be 'true'")
    mounts = [m.get("mountPath", "") for m in container.get("volumeMounts") or []]
    for key in wanted:
        value = env.get(key)
        if value and not any(str(value).startswith(m.rstrip("/") + "/") for m in mounts if m):
            errors.append(f"{where}.env.{key}: {value!r} is not under a mounted volume")
    args = [str(a) for a in container.get("args") or []]
    if "--protocol" not in args or args[args.index("--protocol") + 1 :][:1] != ["tls"]:
        errors.append(f"{where}.args: expected '--protocol tls'")
    if role == "worker":
        meta = spec.get("metadata") or {}
        expected = scheduler_address(str(meta.get("name")), str(meta.get("namespace", "default")))
        if env.get("DASK_SCHEDULER_ADDRESS") != expected:
            errors.append(
                f"{where}.env.DASK_SCHEDULER_ADDRESS: got {env.get('DASK_SCHEDULER_ADDRESS')!r}, "
                f"expected {expected!r}"
            )
    return errors


def _pod_errors(where: str, pod: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    secrets = {
        v.get("name") for v in pod.get("volumes") or [] if (v.get("secret") or {}).get("secretName")
    }
    for i, container in enumerate(pod.get("containers") or []):
        for j, mount in enumerate(container.get("volumeMounts") or []):
            if mount.get("mountPath", "").startswith("/etc/dask/tls") and (
                mount.get("name") not in secrets
            ):
                errors.append(
                    f"{where}.containers[{i}].volumeMounts[{j}]: the TLS mount "
                    f"{mount.get('name')!r} is not a volume from a Secret"
                )
    if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
        errors.append(f"{where}.securityContext.runAsNonRoot: expected true")
    return errors


def validate_cluster_spec(
    spec: dict[str, Any], *, source: str | None = None, require_gpu: bool = False
) -> None:
    """Check a DaskCluster resource offline; raise one error that lists every problem.

    Checks: ``apiVersion``/``kind``; the CRD's ``openAPIV3Schema`` from the installed
    dask_kubernetes (jsonschema); the cluster name; worker replicas >= 0; an image with a tag,
    CPU and memory requests and limits on every container; ``nvidia.com/gpu`` requests and
    ``dask cuda worker`` on the GPU variant (label ``fraud-dask/variant: gpu``) and none on the
    CPU variant; Dask TLS (``--protocol tls``, encryption required, CA/cert/key env vars under
    a Secret volume, a ``tls://`` scheduler address for workers); a ClusterIP scheduler Service
    (the dashboard is not exposed outside the cluster); non-root pods.

    Parameters
    ----------
    spec : dict
        The resource.
    source : str, optional
        Where it came from, for the message.
    require_gpu : bool
        Fail unless the spec is the GPU variant.

    Raises
    ------
    ValueError
        ``"invalid DaskCluster (SOURCE):"`` then one ``path: problem`` line per problem.
    """
    errors: list[str] = []
    if not isinstance(spec, dict):
        raise ValueError(f"invalid DaskCluster ({source}): got {type(spec).__name__}, not a dict")
    if spec.get("apiVersion") != API_VERSION:
        errors.append(f"apiVersion: got {spec.get('apiVersion')!r}, expected {API_VERSION!r}")
    if spec.get("kind") != KIND:
        errors.append(f"kind: got {spec.get('kind')!r}, expected {KIND!r}")
    errors += _schema_errors(spec)
    if not errors:
        meta = spec.get("metadata") or {}
        name = meta.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            errors.append(
                f"metadata.name: got {name!r}, expected lowercase letters, digits and '-', "
                "starting and ending with a letter or digit, at most 53 characters"
            )
        body = spec["spec"]
        gpu = is_gpu_spec(spec)
        if require_gpu and not gpu:
            errors.append(
                f"metadata.labels.{VARIANT_LABEL}: cluster.require_gpu=true but this is not the "
                "GPU variant (use cluster/kubernetes/daskcluster-gpu.yaml)"
            )
        replicas = body["worker"].get("replicas", 1)
        if replicas < 0:
            errors.append(f"spec.worker.replicas: got {replicas}, expected an integer >= 0")
        service = body["scheduler"]["service"]
        if service.get("type", "ClusterIP") != "ClusterIP":
            errors.append(
                f"spec.scheduler.service.type: got {service.get('type')!r}, expected 'ClusterIP' "
                "(the dashboard and scheduler stay inside the cluster; use kubectl port-forward)"
            )
        for key in ("externalIPs", "loadBalancerIP"):
            if service.get(key):
                errors.append(f"spec.scheduler.service.{key}: must not be set")
        for j, port in enumerate(service.get("ports") or []):
            if port.get("nodePort"):
                errors.append(f"spec.scheduler.service.ports[{j}].nodePort: must not be set")
        selected = (service.get("selector") or {}).get("dask.org/cluster-name")
        if selected != name:
            errors.append(
                "spec.scheduler.service.selector.dask.org/cluster-name: "
                f"got {selected!r}, expected {name!r}"
            )
        for role in ("scheduler", "worker"):
            pod = body[role]["spec"]
            errors += _pod_errors(f"spec.{role}.spec", pod)
            for i, container in enumerate(pod["containers"]):
                where = f"spec.{role}.spec.containers[{i}]"
                errors += _container_errors(where, container, role, gpu, spec)
    if errors:
        head = f"invalid DaskCluster ({source or 'spec'}):"
        raise ValueError("\n  ".join([head, *errors]))


def client_security(conf: KubernetesClusterConf) -> Any:
    """The client's :class:`distributed.security.Security` from ``cluster.tls_*`` paths."""
    ca, cert, key = conf.tls_ca_file, conf.tls_client_cert, conf.tls_client_key
    missing = [n for n, v in (("tls_ca_file", ca), ("tls_client_cert", cert)) if not v]
    if missing:
        raise ValueError(
            "cluster=kubernetes: the DaskCluster requires TLS; set "
            + ", ".join(f"cluster.{m}" for m in missing)
            + " (ca.crt and a client certificate signed by the same CA as Secret fraud-dask-tls; "
            "see cluster/README.md)"
        )
    from distributed.security import Security

    return Security(
        tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True
    )


def as_tls(address: str) -> str:
    """Rewrite a ``tcp://`` scheduler address (as the operator reports it) to ``tls://``."""
    scheme, sep, rest = address.partition("://")
    return f"tls://{rest}" if sep and scheme == "tcp" else address


@contextlib.contextmanager
def tls_rpc(security: Any) -> Iterator[None]:
    """Give dask_kubernetes' scheduler RPCs the client's TLS credentials, within this block.

    ``KubeCluster`` opens ``rpc(address)`` without connection arguments (it supports no
    ``security``); inside this block the two module names it uses build TLS connections.
    """
    from dask_kubernetes.operator import networking
    from dask_kubernetes.operator.kubecluster import kubecluster
    from distributed.core import rpc

    secured = functools.partial(rpc, connection_args=security.get_connection_args("client"))
    saved = kubecluster.rpc, networking.rpc
    kubecluster.rpc = networking.rpc = secured
    try:
        yield
    finally:
        kubecluster.rpc, networking.rpc = saved


def make_kube_cluster(conf: KubernetesClusterConf) -> Any:
    """Create (or connect to) the DaskCluster on Kubernetes; this contacts the cluster.

    Parameters
    ----------
    conf : KubernetesClusterConf
        The ``cluster`` node: what :func:`build_cluster_spec` uses, plus ``namespace``,
        ``shutdown_on_close`` and the client TLS files ``tls_ca_file``, ``tls_client_cert``,
        ``tls_client_key``.

    Returns
    -------
    dask_kubernetes.operator.KubeCluster
        With ``security`` set, so ``Client(cluster)`` connects over TLS.
    """
    spec = build_cluster_spec(conf)
    security = client_security(conf)
    from dask_kubernetes.operator import KubeCluster

    class TLSKubeCluster(KubeCluster):
        """KubeCluster whose scheduler connections use TLS with the client's credentials."""

        def __init__(self, *, security: Any, **kwargs: Any) -> None:
            self.security = security  # read by _start below and by Client(cluster)
            super().__init__(**kwargs)

        async def _get_scheduler_address(self) -> str:
            return as_tls(await super()._get_scheduler_address())

        async def _start(self) -> None:
            with tls_rpc(self.security):
                await super()._start()

    return TLSKubeCluster(
        security=security,
        custom_cluster_spec=spec,
        namespace=str(conf.namespace),
        shutdown_on_close=bool(conf.shutdown_on_close),
        quiet=True,
    )
