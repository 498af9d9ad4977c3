"""Kubernetes deployment, checked offline: manifests, spec building, worker images, TLS."""

from __future__ import annotations

import asyncio
import copy
import importlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraud_dask.cluster import KubernetesClusterConf
from fraud_dask.cluster import kubernetes as k8s

ROOT = Path(__file__).resolve().parents[1]
CPU = "cluster/kubernetes/daskcluster-cpu.yaml"
GPU = "cluster/kubernetes/daskcluster-gpu.yaml"
MANIFESTS = [CPU, GPU]


def conf(**overrides: Any) -> KubernetesClusterConf:
    return KubernetesClusterConf(**overrides)


def containers(spec: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return spec["spec"][role]["spec"]["containers"]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


# --- the manifests as shipped -------------------------------------------------------------------


@pytest.mark.parametrize("path", MANIFESTS)
def test_manifest_matches_operator_crd_schema(path: str) -> None:
    import jsonschema

    doc = k8s.load_manifest(path)
    assert doc["apiVersion"] == "kubernetes.dask.org/v1"
    assert doc["kind"] == "DaskCluster"
    jsonschema.validate(doc, k8s.crd_schema())  # the schema dask_kubernetes installs
    k8s.validate_cluster_spec(doc, source=path)


@pytest.mark.parametrize("path", MANIFESTS)
def test_manifest_images_resources_and_probes(path: str) -> None:
    doc = k8s.load_manifest(path)
    expected_image = "fraud-dask:0.1.0-cuda12" if "gpu" in path else "fraud-dask:0.1.0-cpu"
    for role in ("scheduler", "worker"):
        pod = doc["spec"][role]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert c["image"] == expected_image
            assert set(c["resources"]["requests"]) >= {"cpu", "memory"}
            assert c["resources"]["requests"] == c["resources"]["limits"]
            assert c["readinessProbe"]["httpGet"]["path"] == "/health"
            assert c["livenessProbe"]["httpGet"]["port"] == "http-dashboard"
    assert doc["spec"]["worker"]["replicas"] >= 1


def test_gpu_manifest_requests_gpus_and_runs_dask_cuda_worker() -> None:
    gpu = k8s.load_manifest(GPU)
    (worker,) = containers(gpu, "worker")
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert worker["args"][:3] == ["dask", "cuda", "worker"]
    assert k8s.is_gpu_spec(gpu)
    cpu = k8s.load_manifest(CPU)
    (cpu_worker,) = containers(cpu, "worker")
    assert "nvidia.com/gpu" not in str(cpu_worker["resources"])
    assert cpu_worker["args"][:2] == ["dask", "worker"]
    assert not k8s.is_gpu_spec(cpu)


@pytest.mark.parametrize("path", MANIFESTS)
def test_manifest_tls_everywhere(path: str) -> None:
    doc = k8s.load_manifest(path)
    for role in ("scheduler", "worker"):
        pod = doc["spec"][role]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            env = env_of(c)
            assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "true"
            assert env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"] == "/etc/dask/tls/ca.crt"
            assert env[f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__CERT"].startswith("/etc/")
            assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"] == "/etc/dask/tls/tls.key"
            args = c["args"]
            assert args[args.index("--protocol") + 1] == "tls"
            (mount,) = c["volumeMounts"]
            assert mount["mountPath"] == "/etc/dask/tls" and mount["readOnly"] is True
            assert volumes[mount["name"]]["secret"]["secretName"] == "fraud-dask-tls"
    (worker,) = containers(doc, "worker")
    assert env_of(worker)["DASK_SCHEDULER_ADDRESS"] == (
        "tls://fraud-dask-scheduler.default.svc.cluster.local:8786"
    )


@pytest.mark.parametrize("path", MANIFESTS)
def test_dashboard_stays_inside_the_cluster(path: str) -> None:
    service = k8s.load_manifest(path)["spec"]["scheduler"]["service"]
    assert service["type"] == "ClusterIP"
    assert {p["name"] for p in service["ports"]} == {"tcp-comm", "http-dashboard"}
    assert not any("nodePort" in p for p in service["ports"])
    assert "externalIPs" not in service and "loadBalancerIP" not in service


# --- build_cluster_spec ---------------------------------------------------------------------------


def test_build_applies_overrides() -> None:
    spec = k8s.build_cluster_spec(
        conf(
            name="team-a",
            namespace="fraud",
            image="reg.example.com/fraud-dask:1.2.3-cpu",
            n_workers=7,
            worker_cores=0.5,
            worker_memory="3GiB",
        )
    )
    assert spec["metadata"] == {**spec["metadata"], "name": "team-a", "namespace": "fraud"}
    assert spec["spec"]["worker"]["replicas"] == 7
    assert spec["spec"]["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == "team-a"
    for role in ("scheduler", "worker"):
        assert {c["image"] for c in containers(spec, role)} == {
            "reg.example.com/fraud-dask:1.2.3-cpu"
        }
    (worker,) = containers(spec, "worker")
    assert worker["resources"]["requests"] == {"cpu": "500m", "memory": "3Gi"}
    assert worker["resources"]["limits"] == {"cpu": "500m", "memory": "3Gi"}
    args = worker["args"]
    assert args[args.index("--nthreads") + 1] == "1"
    assert args[args.index("--memory-limit") + 1] == "3GiB"
    assert env_of(worker)["DASK_SCHEDULER_ADDRESS"] == (
        "tls://team-a-scheduler.fraud.svc.cluster.local:8786"
    )
    # the file on disk is untouched
    assert k8s.load_manifest(CPU)["metadata"]["name"] == "fraud-dask"


def test_build_without_image_keeps_the_manifests() -> None:
    spec = k8s.build_cluster_spec(conf(image=None, worker_cores=4, worker_memory="16GiB"))
    (worker,) = containers(spec, "worker")
    assert worker["image"] == "fraud-dask:0.1.0-cpu"
    assert worker["resources"]["limits"] == {"cpu": "4", "memory": "16Gi"}
    assert worker["args"][worker["args"].index("--nthreads") + 1] == "4"


def test_build_gpu_variant_keeps_gpu_requests() -> None:
    spec = k8s.build_cluster_spec(
        conf(manifest=GPU, require_gpu=True, n_workers=3, worker_cores=8, worker_memory="64GiB")
    )
    (worker,) = containers(spec, "worker")
    assert worker["resources"]["requests"] == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"}
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert worker["args"][:3] == ["dask", "cuda", "worker"]
    assert spec["spec"]["worker"]["replicas"] == 3


def test_manifest_path_relative_to_repo_root_from_another_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert k8s.build_cluster_spec(conf())["kind"] == "DaskCluster"
    absolute = str(ROOT / GPU)
    assert k8s.is_gpu_spec(k8s.build_cluster_spec(conf(manifest=absolute)))
    with pytest.raises(FileNotFoundError, match="no-such.yaml"):
        k8s.build_cluster_spec(conf(manifest="cluster/kubernetes/no-such.yaml"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_workers": -2}, r"spec\.worker\.replicas: got -2, expected an integer >= 0"),
        ({"name": "Fraud_Dask"}, r"metadata\.name: got 'Fraud_Dask'"),
        ({"require_gpu": True}, r"cluster\.require_gpu=true but this is not the GPU variant"),
        ({"image": "fraud-dask"}, r"containers\[0\]\.image: got 'fraud-dask', expected an expl"),
    ],
)
def test_bad_overrides_fail_with_the_path(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        k8s.build_cluster_spec(conf(**overrides))
    assert str(info.value).startswith(f"invalid DaskCluster ({CPU}):")


def write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_not_a_daskcluster(tmp_path: Path) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": 1},
    }
    with pytest.raises(ValueError) as info:
        k8s.build_cluster_spec(conf(manifest=write(tmp_path, deployment)))
    text = str(info.value)
    assert "apiVersion: got 'apps/v1', expected 'kubernetes.dask.org/v1'" in text
    assert "kind: got 'Deployment', expected 'DaskCluster'" in text
    assert "spec: 'scheduler' is a required property (DaskCluster CRD schema)" in text


def test_crd_schema_error_names_the_field(tmp_path: Path) -> None:
    doc = k8s.load_manifest(CPU)
    containers(doc, "worker")[0]["resources"]["limits"]["cpu"] = 2  # CRD wants a string
    with pytest.raises(
        ValueError,
        match=r"spec\.worker\.spec\.containers\[0\]\.resources\.limits\.cpu: 2 is not of type",
    ):
        k8s.validate_cluster_spec(doc)


def broken(mutate: Any, path: str = CPU) -> dict[str, Any]:
    doc = copy.deepcopy(k8s.load_manifest(path))
    mutate(doc)
    return doc


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["spec"]["scheduler"]["service"].update(type="LoadBalancer"),
            r"spec\.scheduler\.service\.type: got 'LoadBalancer', expected 'ClusterIP'",
        ),
        (
            lambda d: d["spec"]["scheduler"]["service"]["ports"][1].update(nodePort=30087),
            r"spec\.scheduler\.service\.ports\[1\]\.nodePort: must not be set",
        ),
        (
            lambda d: containers(d, "worker")[0]["env"].pop(1),
            r"spec\.worker\.spec\.containers\[0\]\.env: DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYP",
        ),
        (
            lambda d: containers(d, "scheduler")[0]["env"].pop(2),
            r"spec\.scheduler\.spec\.containers\[0\]\.env: missing DASK_DISTRIBUTED__COMM__TLS__C",
        ),
        (
            lambda d: containers(d, "worker")[0].pop("volumeMounts"),
            r"containers\[0\]\.env\.DASK_DISTRIBUTED__COMM__TLS__CA_FILE: '/etc/dask/tls/ca.crt' "
            r"is not under a mounted volume",
        ),
        (
            lambda d: containers(d, "worker")[0]["resources"].pop("limits"),
            r"spec\.worker\.spec\.containers\[0\]\.resources\.limits\.memory: missing",
        ),
        (
            lambda d: containers(d, "worker")[0]["env"][0].update(value="tcp://x:8786"),
            r"DASK_SCHEDULER_ADDRESS: got 'tcp://x:8786', expected 'tls://fraud-dask-scheduler",
        ),
        (
            lambda d: d["spec"]["worker"]["spec"]["securityContext"].pop("runAsNonRoot"),
            r"spec\.worker\.spec\.securityContext\.runAsNonRoot: expected true",
        ),
        (
            lambda d: containers(d, "worker")[0]["resources"]["limits"].update(
                {"nvidia.com/gpu": "1"}
            ),
            r"nvidia\.com/gpu requested on the CPU variant",
        ),
    ],
)
def test_validation_names_what_is_wrong(mutate: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        k8s.validate_cluster_spec(broken(mutate))


def test_gpu_variant_without_gpu_request_fails() -> None:
    def drop_gpu(d: dict[str, Any]) -> None:
        for kind in ("requests", "limits"):
            del containers(d, "worker")[0]["resources"][kind]["nvidia.com/gpu"]

    with pytest.raises(ValueError) as info:
        k8s.validate_cluster_spec(broken(drop_gpu, GPU), source=GPU)
    text = str(info.value)
    assert "resources.requests.nvidia.com/gpu: got None, expected at least 1" in text
    assert "resources.limits.nvidia.com/gpu: got None" in text


def test_quantities() -> None:
    assert k8s.k8s_memory("8GiB") == "8Gi"
    assert k8s.k8s_memory("512MiB") == "512Mi"
    assert k8s.k8s_memory("1GB") == "1000000000"
    assert k8s.k8s_cpu(2.0) == "2" and k8s.k8s_cpu(0.25) == "250m" and k8s.k8s_cpu(1.5) == "1500m"


# --- no cluster is contacted --------------------------------------------------------------------


def test_import_and_build_contact_no_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError(f"network use: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in [m for m in sys.modules if m.startswith(("dask_kubernetes", "kr8s"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, "fraud_dask.cluster.kubernetes")
    k8s.crd_schema.cache_clear()
    fresh = importlib.import_module("fraud_dask.cluster.kubernetes")
    for path in MANIFESTS:
        spec = fresh.build_cluster_spec(conf(manifest=path, require_gpu=path == GPU))
        fresh.validate_cluster_spec(spec)
    assert calls == []
    assert "kr8s" not in sys.modules  # the Kubernetes client is never loaded


def test_kubernetes_run_needs_client_tls_before_contacting_kubernetes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("network use"))
    with pytest.raises(ValueError, match=r"requires TLS; set cluster\.tls_ca_file, cluster\.tls"):
        k8s.make_kube_cluster(conf())


# --- the TLS patch for KubeCluster, against a real TLS scheduler ---------------------------------


def test_tls_rpc_lets_dask_kubernetes_reach_a_tls_scheduler() -> None:
    from dask_kubernetes.operator import networking
    from dask_kubernetes.operator.kubecluster import kubecluster
    from distributed import LocalCluster
    from distributed.security import Security

    security = Security.temporary()
    assert k8s.as_tls("tcp://localhost:8786") == "tls://localhost:8786"
    assert k8s.as_tls("tls://localhost:8786") == "tls://localhost:8786"
    with LocalCluster(
        n_workers=1, processes=False, security=security, dashboard_address=":0"
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")

        async def probe() -> dict[str, Any]:
            await asyncio.wait_for(networking.wait_for_scheduler_comm(address), 30)
            async with kubecluster.rpc(address) as comm:
                return await comm.identity()

        with pytest.raises(TypeError, match="TLS expects a `ssl_context`"):
            asyncio.run(probe())  # what dask_kubernetes does on its own
        original = kubecluster.rpc, networking.rpc
        with k8s.tls_rpc(security):
            identity = asyncio.run(probe())
        assert (kubecluster.rpc, networking.rpc) == original
        assert identity["type"] == "Scheduler" and len(identity["workers"]) == 1


# --- the manifest's commands, run here, form a TLS-only cluster ----------------------------------


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Z_]+)\)", lambda m: env[m.group(1)], value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_manifest_commands_make_a_tls_only_cluster(tmp_path: Path) -> None:
    from distributed import Client
    from distributed.security import Security

    temp = Security.temporary()
    certs = tmp_path / "tls"
    certs.mkdir()
    (certs / "ca.crt").write_text(temp.tls_ca_file)
    (certs / "tls.crt").write_text(temp.tls_scheduler_cert)
    (certs / "tls.key").write_text(temp.tls_scheduler_key)
    port = _free_port()
    doc = k8s.load_manifest(CPU)
    bindir = Path(sys.executable).parent
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []

    def launch(role: str, extra_env: dict[str, str]) -> None:
        (c,) = containers(doc, role)
        env = {k: v.replace("/etc/dask/tls", str(certs)) for k, v in env_of(c).items()}
        env.update(extra_env)
        args = [_expand(a.replace("/etc/dask/tls", str(certs)), env) for a in c["args"]]
        args = [{"8786": str(port), ":8787": ":0", ":8788": ":0"}.get(a, a) for a in args]
        args[0] = str(bindir / args[0])
        logs.append(log := open(tmp_path / f"{role}.log", "wb"))
        procs.append(subprocess.Popen(args, env={**os.environ, **env}, stdout=log, stderr=log))

    try:
        launch("scheduler", {})
        address = f"tls://127.0.0.1:{port}"
        launch("worker", {"DASK_SCHEDULER_ADDRESS": address, "DASK_WORKER_NAME": "w0"})
        client_security = Security(
            tls_ca_file=str(certs / "ca.crt"),
            tls_client_cert=str(certs / "tls.crt"),
            tls_client_key=str(certs / "tls.key"),
            require_encryption=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                client = Client(address, security=client_security, timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    logs = {p.name: p.read_text() for p in tmp_path.glob("*.log")}
                    pytest.fail(f"the manifest's scheduler did not come up: {logs}")
                time.sleep(0.5)
        with client:
            client.wait_for_workers(1, timeout=120)
            assert client.submit(sum, [1, 2, 3]).result() == 6
            (worker,) = client.scheduler_info(n_workers=-1)["workers"].values()
            assert worker["name"] == "w0" and worker["nthreads"] == 2
        with pytest.raises(OSError):  # plain TCP is refused
            Client(f"tcp://127.0.0.1:{port}", timeout=3)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


# --- worker images ----------------------------------------------------------------------------


def dockerfile(path: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, rest = (pending + line).partition(" ")
        out.append((instruction.upper(), " ".join(rest.split())))
        pending = ""
    assert not pending, f"{path}: dangling line continuation"
    return out


@pytest.mark.parametrize(
    ("path", "base", "install"),
    [
        ("cluster/images/cpu/Dockerfile", r"python:3\.11-slim", r"pip install \. "),
        (
            "cluster/images/cuda/Dockerfile",
            r"nvidia/cuda:12\.[\d.]+-runtime-",
            r"install \"\.\[gpu\]\"",
        ),
    ],
)
def test_images_install_this_repository(path: str, base: str, install: str) -> None:
    steps = dockerfile(path)
    froms = [a for i, a in steps if i == "FROM"]
    assert len(froms) == 1 and re.match(base, froms[0]), froms
    copied = " ".join(a for i, a in steps if i == "COPY")
    for part in ("pyproject.toml", "README.md", "fraud_dask", "configs"):
        assert part in copied, f"{path} does not copy {part}"
    runs = " && ".join(a for i, a in steps if i == "RUN") + " "
    assert re.search(install, runs), f"{path}: no {install!r} in {runs}"
    # only this repository is installed: its pinned dependencies come from pyproject.toml
    for cmd in re.findall(r"pip install ([^&]*)", runs):
        assert set(cmd.split()) <= {".", '".[gpu]"', "--no-deps"}, cmd
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert users[-1].split(":")[0] == "1000"  # runAsUser in the manifests
    env = " ".join(a for i, a in steps if i == "ENV")
    assert "FRAUD_DASK_CONFIG_DIR=/opt/fraud_dask/configs" in env
    lines = (ROOT / (path + ".dockerignore")).read_text().splitlines()
    ignore = [x.strip() for x in lines if x.strip() and not x.startswith("#")]
    assert ignore[0] == "**" and "!fraud_dask/**" in ignore and "!pyproject.toml" in ignore


def test_cuda_image_has_the_python_of_the_cpu_image() -> None:
    runs = " ".join(a for i, a in dockerfile("cluster/images/cuda/Dockerfile") if i == "RUN")
    assert "--python 3.11" in runs


def test_manifests_run_as_the_image_user() -> None:
    for path in MANIFESTS:
        for role in ("scheduler", "worker"):
            assert (
                k8s.load_manifest(path)["spec"][role]["spec"]["securityContext"]["runAsUser"]
                == 1000
            )
