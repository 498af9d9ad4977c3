"""``python -m fraud_dask [overrides]``: compose the config, open one cluster session, run the task.

Every run writes into its Hydra run directory: ``resolved_config.yaml`` and ``overrides.yaml``
(secrets such as PAN hash keys replaced by ``***``), ``fraud_dask.log``, ``metrics.json`` when
the task returns metrics, and ``dask-report.html`` (a Dask performance report of the run).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

log = logging.getLogger("fraud_dask")


def _jsonable(value: Any) -> Any:
    """Make a task's result JSON-serialisable (numpy scalars, paths, enums)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):  # enum
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


SECRET_KEYS = ("key", "secret", "password", "token", "tls_client_key")


def redacted(cfg: Any) -> Any:
    """The resolved config with secret values (PAN hash keys, credentials) replaced by '***'."""
    from omegaconf import OmegaConf

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: "***" if isinstance(k, str) and k.endswith(SECRET_KEYS) and v else scrub(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return OmegaConf.create(scrub(plain))


def _summary(task: str, result: dict[str, Any], run_dir: Path) -> str:
    lines = [f"fraud_dask task={task} finished; run directory: {run_dir}"]
    for key in ("rows", "rows_written", "rows_in", "rows_kept", "rows_quarantined"):
        if key in result:
            lines.append(f"  {key}: {result[key]}")
    test = result.get("test")
    if isinstance(test, dict):
        for key in ("roc_auc", "average_precision", "card_precision_at_100"):
            if key in test and isinstance(test[key], int | float):
                lines.append(f"  test.{key}: {test[key]:.4f}")
    for key in ("report", "output", "model_path"):
        if isinstance(result.get(key), str):
            lines.append(f"  {key}: {result[key]}")
    return "\n".join(lines)


def execute(cfg: Any) -> dict[str, Any]:
    """Run ``cfg.task`` in one cluster session and write the run directory's artifacts."""
    from omegaconf import OmegaConf

    from fraud_dask.cluster import connect
    from fraud_dask.tasks import get_task

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "resolved_config.yaml").write_text(OmegaConf.to_yaml(redacted(cfg)))
    task_name = str(getattr(cfg.task.name, "value", cfg.task.name))
    task = get_task(task_name)  # import errors surface before a cluster starts

    started = time.perf_counter()
    with connect(cfg.cluster) as client:
        if cfg.task.performance_report:
            from distributed import performance_report

            with performance_report(filename=str(run_dir / "dask-report.html")):
                result = task(cfg, client)
        else:
            result = task(cfg, client)
    result = _jsonable(dict(result or {}))
    if result:
        result.setdefault("wall_time_s", round(time.perf_counter() - started, 3))
        (run_dir / "metrics.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(_summary(task_name, result, run_dir), flush=True)
    return result


def _redact_override(override: str) -> str:
    key, sep, value = override.partition("=")
    return (
        f"{key}{sep}***" if sep and key.rstrip("~+").endswith(SECRET_KEYS) and value else override
    )


def _hydra_main(cfg: Any) -> Any:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    cfg.run_dir = hc.runtime.output_dir
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Hydra's own .hydra/ copy is switched off (it would keep secrets given as overrides)
    overrides = [_redact_override(o) for o in hc.overrides.task]
    (run_dir / "overrides.yaml").write_text(
        "".join(f"- {json.dumps(o)}\n" for o in overrides) or "[]\n"
    )
    return execute(cfg)


def main() -> None:
    """Console entry point (``python -m fraud_dask`` / ``fraud-dask``)."""
    import hydra

    from fraud_dask.config import CONFIG_DIR, register_configs

    register_configs()
    logging.getLogger("distributed").setLevel(logging.WARNING)
    # every P2P shuffle logs "initialized"/"deactivated" at WARNING from the scheduler plugin
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
    wrapped = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")(
        _hydra_main
    )
    wrapped()


if __name__ == "__main__":
    main()
