"""``python -m fraud_dask --help``: a one-screen overview, and ``task=NAME --help`` for one task.

Hydra prints ``hydra.help.template`` (``configs/hydra/help/fraud_dask.yaml``); the template is the
resolver ``${fraud_dask_help:${hydra.overrides.task}}``, registered by the entry point, so the
text is built here from the code itself: each task's one line is the first line of its module's
docstring, each option's line the comment above its field in the task's schema dataclass (or the
docstring below it), each config group's options the YAML files under ``configs/``. Nothing
here imports dask: the task modules are read with :mod:`ast`, not imported.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib.util
import inspect
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: the resolver's name in the help template
RESOLVER = "fraud_dask_help"

#: one line per config group (a group without one here shows its options only)
GROUPS = {
    "cluster": "where the work runs",
    "data": "the transactions (a client's source: one more YAML here)",
    "features": "the declared feature set",
    "model": "the model, its parameters and its device (model.device=auto|cpu|cuda)",
    "split": "train / label-delay gap / test periods, prequential folds",
    "task": "what runs (below)",
    "experiment": "named, versioned combinations of the above",
    "monitor": "task=monitor: periods, drift measures, alert rules",
    "tune": "task=tune: the Optuna study, its budget and search space",
    "explore": "task=explore: segments and periods to look at",
    "sql": "task=sql: the query and where its result goes",
}

EXAMPLES = (
    "python -m fraud_dask                                  # the pipeline on synthetic data",
    "python -m fraud_dask task=info                        # versions, machine, cluster",
    "python -m fraud_dask task=onboard data=client_x       # a client's source, end to end",
    "python -m fraud_dask task=registry task.action=show   # the champion's details",
    "python -m fraud_dask -m model.params.max_depth=4,6,8  # a sweep, with a table at the end",
    "python -m fraud_dask task=train --help                # one task's options",
)


def _text(doc: str) -> str:
    """reST markup as plain text: ``x`` -> x, :func:`a.b.c` -> c."""
    doc = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"\1", doc)
    return doc.replace("``", "")


def _module_doc(name: str) -> str:
    """A task module's docstring, read without importing it (no dask import for --help)."""
    spec = importlib.util.find_spec(f"fraud_dask.tasks.{name}")
    if spec is None or spec.origin is None:
        return ""
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""


def task_line(name: str) -> str:
    """The task's one line: its module docstring's first line, without ``task=NAME:``."""
    first = _text(_module_doc(name)).strip().splitlines()
    line = first[0] if first else ""
    return re.sub(rf"^task={name}\s*(\(the default\))?\s*:\s*", "", line).rstrip(".")


def field_docs(cls: type) -> dict[str, str]:
    """Each field's description: the ``#`` comment lines above it or the docstring below it,
    from the most derived class that declares the field."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        comment: list[str] = []
        for i, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith("#"):
                comment.append(stripped.lstrip("#:").strip())
                continue
            match = re.match(r"^\s{4}(\w+)\s*:\s*[^=]", line)
            if match and not stripped.startswith(("def ", "class ")):
                text = " ".join(comment)
                after = lines[i + 1].strip() if i + 1 < len(lines) else ""
                if after.startswith('"""'):
                    text = after.strip('"').strip() or text
                if text or match.group(1) not in docs:
                    docs[match.group(1)] = _text(text)
            comment = []
    return docs


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if dataclasses.is_dataclass(value):
        return "{...}"
    return str(value)


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Mapping | list | tuple):
        return "{...}" if isinstance(value, Mapping) else "[...]"
    return str(value)


def _choices(field: dataclasses.Field[Any], cls: type) -> str:
    """``[a|b|c]`` for a field typed by an enum."""
    hint = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    module = inspect.getmodule(cls)
    for name in re.findall(r"\w+", str(hint)):
        kind = getattr(module, name, None)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return "  [" + "|".join(str(m.value) for m in kind) + "]"
    return ""


def options_table(
    cls: type, prefix: str, skip: Iterable[str] = (), values: Mapping[str, Any] | None = None
) -> list[str]:
    """One line per field of a schema: ``prefix.name  value  description [choices]``.

    The value is the composed one when ``values`` holds it (a task's YAML may set another than
    the schema's default), the schema's default otherwise. The class's own fields come first,
    then those it inherits."""
    docs = field_docs(cls)
    own = set(getattr(cls, "__annotations__", {}))
    fields = [f for f in dataclasses.fields(cls) if f.name not in set(skip)]
    fields.sort(key=lambda f: f.name not in own)
    if not fields:
        return ["  (none)"]
    names = [f"{prefix}{f.name}" for f in fields]
    given = values or {}
    defaults = [_shown(given[f.name]) if f.name in given else _default(f) for f in fields]
    wn = max(len(n) for n in names)
    wd = min(max(len(d) for d in defaults), 16)
    out = []
    for f, name, default in zip(fields, names, defaults, strict=True):
        doc = docs.get(f.name, "") + _choices(f, cls)
        out.append(f"  {name:<{wn}}  {default:<{wd}}  {doc}".rstrip())
    return out


def _groups(config_dir: Path) -> list[tuple[str, list[str]]]:
    found = []
    for folder in sorted(p for p in config_dir.iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if options:
            found.append((folder.name, options))
    return found


def _defaults(config_dir: Path) -> dict[str, str]:
    """The option each group starts from: ``configs/config.yaml``'s defaults list."""
    import yaml

    try:
        entries = yaml.safe_load((config_dir / "config.yaml").read_text()).get("defaults", [])
    except (OSError, AttributeError, yaml.YAMLError):
        return {}
    chosen = {}
    for entry in entries:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if isinstance(value, str) and " " not in str(key):
                    chosen[str(key)] = value
    return chosen


def overview(config_dir: Path) -> str:
    """The one-screen overview: usage, tasks, config groups, examples."""
    from fraud_dask.tasks import TaskName

    names = [str(t) for t in TaskName]
    width = max(len(n) for n in names)
    lines = [
        "fraud_dask: fraud detection at scale on Dask (Hydra overrides: key=value, group=option)",
        "",
        "usage: python -m fraud_dask [task=NAME] [group=option ...] [key=value ...] [-m]",
        "",
        "Tasks (task=NAME, default pipeline; python -m fraud_dask task=NAME --help for one):",
    ]
    lines += [f"  {n:<{width}}  {task_line(n)}" for n in names]
    lines += ["", "Config groups (group=option; * marks the default):"]
    groups = _groups(config_dir)
    chosen = _defaults(config_dir)
    gw = max((len(g) for g, _ in groups), default=0) + 1
    for group, options in groups:
        if group == "task":
            continue
        first = [o for o in options if o == chosen.get(group)]
        listed = ", ".join([*(f"{o}*" for o in first), *(o for o in options if o not in first)])
        what = GROUPS.get(group, "")
        lines.append(f"  {group + ':':<{gw}}  {listed}" + (f" - {what}" if what else ""))
    lines += ["", "Examples:"]
    lines += [f"  {e}" for e in EXAMPLES]
    lines += [
        "",
        "More: --cfg job (the composed config, nothing runs), console.progress=on|off (bars),",
        "hydra.run.dir=PATH (the run directory), --hydra-help (Hydra's own flags), README.md.",
    ]
    return "\n".join(lines)


def task_help(name: str, values: Mapping[str, Any] | None = None) -> str:
    """One task: its module docstring and its options (``task.<field>``), with their values
    (``values``: the composed ``task`` node, else the schema's defaults)."""
    from fraud_dask.tasks import TASK_CONFS, TaskName

    task = TaskName(name)
    schema = TASK_CONFS[task]
    doc = _text(_module_doc(name)).strip()
    body = doc.splitlines()
    if len(body) > 40:
        body = [*body[:40], "  ..."]
    lines = [*body, "", f"Options of task={name} (task.<option>=VALUE; {schema.__name__}):"]
    lines += options_table(schema, "task.", skip=("name",), values=values)
    lines += [
        "",
        f"Every setting it reads, composed: python -m fraud_dask task={name} --cfg job",
        "All tasks and config groups: python -m fraud_dask --help",
    ]
    return "\n".join(lines)


def render(overrides: Sequence[str] | None, task_node: Mapping[str, Any] | None = None) -> str:
    """The help text for these overrides: :func:`task_help` when one names ``task=NAME``
    (``task_node``: the composed ``task`` config, for the values its YAML sets).

    The text goes through Hydra's ``string.Template``: ``$`` is escaped."""
    from fraud_dask.config import CONFIG_DIR

    task = None
    for override in overrides or ():
        key, sep, value = str(override).partition("=")
        if sep and key.lstrip("+~") == "task":
            task = value
    text = task_help(task, task_node) if task else overview(CONFIG_DIR)
    return textwrap.dedent(text).replace("$", "$$")


def register_resolver() -> None:
    """Register :func:`render` as the OmegaConf resolver the help template calls."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, _resolve)


def _resolve(overrides: Any = None, task: Any = None) -> str:
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(task, resolve=True) if OmegaConf.is_config(task) else task
    values = {str(k): v for k, v in node.items()} if isinstance(node, Mapping) else None
    return render(list(overrides or []), values)
