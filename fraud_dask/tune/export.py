"""The best parameters as an experiment config a later run names: ``experiment=<name>``.

The file goes to ``<tune.experiment_dir>/experiment/<name>.yaml``; by default the folder is
``<paths.data_home>/configs``, which ``configs/config.yaml`` puts on Hydra's search path
(``hydra.searchpath``), so ``python -m fraud_dask experiment=<name>`` finds it with no other
setting. It names the run's data and features options (overrides of the defaults) and holds the
whole ``model`` node (the tuned parameters merged, the inputs screening dropped in
``model.exclude``) and the whole ``split`` node, so the later run trains exactly what was tuned.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def experiment_name(given: str | None, study_name: str) -> str:
    """``tune.experiment``, else the study's name (characters Hydra cannot name as ``_``)."""
    from fraud_dask.errors import UserError

    name = given or re.sub(r"[^A-Za-z0-9_.-]", "_", study_name)
    if not _NAME.fullmatch(name):
        raise UserError(f"tune.experiment: {name!r} is not a config name (letters, digits, _ . -)")
    return name


def experiment_dir(given: str | None, data_home: str) -> Path:
    """``tune.experiment_dir``, else ``<data_home>/configs``."""
    return Path(given or Path(data_home) / "configs").expanduser()


def _choices(cfg: Any) -> dict[str, str]:
    """The data and features options of this run (Hydra's choices under the CLI, else the
    sources' and feature sets' names, which are their option names)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        chosen = HydraConfig.get().runtime.choices
        return {g: str(chosen[g]) for g in ("data", "features") if chosen.get(g)}
    return {"data": str(cfg.data.name), "features": str(cfg.features.name)}


def write_experiment(
    cfg: Any,
    model: dict[str, Any],
    *,
    name: str,
    folder: Path,
    note: list[str],
) -> Path:
    """Write ``<folder>/experiment/<name>.yaml`` (atomically) and return its path."""
    from omegaconf import OmegaConf

    node = cfg.split if OmegaConf.is_config(cfg.split) else OmegaConf.structured(cfg.split)
    split = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    body = OmegaConf.to_yaml(OmegaConf.create({"model": model, "split": split}))
    defaults = "".join(f"  - override /{g}: {o}\n" for g, o in _choices(cfg).items())
    head = "# @package _global_\n" + "".join(f"# {line}\n" for line in note)
    text = f"{head}defaults:\n{defaults}  - override /model: {model['kind']}\n\n{body}"
    out = folder / "experiment" / f"{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    log.info("tune: experiment %s written to %s", name, out)
    return out
