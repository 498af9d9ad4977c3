"""The model registry: immutable, versioned model bundles on any fsspec path, and aliases.

Layout under ``registry.path`` (local folder, ``s3://...``, ...)::

    <name>/<version>/            one folder per version: 1, 2, 3, ...
        model.ubj | coefficients.json, model.json     the model (XGBoost UBJSON, never pickle)
        features.json            the feature spec the model was trained on
        config.json              the resolved run config
        metrics.json             evaluation metrics
        reference.json           training reference for monitoring (optional; bundles
                                 registered before it have none and still load)
        manifest.json            written last: version, created, source (data.name and the
                                 redacted data.path), training (fold, start, end, rows, frauds),
                                 fingerprint, library versions, git revision, headline test
                                 metrics, and the size and sha256 of every other file
    <name>/aliases/<alias>.json  e.g. champion.json: {"version": 3, "history": [...]}

A model belongs to its source: by default it is registered as ``fraud-<data.name>``
(``registry.name``), so ``task=score data=handbook`` reads ``fraud-handbook``. Bundles written
before ``source`` and ``training`` were recorded still load and list: their source comes from
``config.json`` and their period is unknown.

Writing is atomic: a bundle is written into a hidden staging folder (``.staging-<uuid>``), its
manifest last, then published. On a local filesystem publishing is one ``rename`` of the folder
(it fails if the version already exists, so concurrent writers take the next number); on object
stores the files are copied with the manifest last, and a version exists only once its manifest
does. An alias is one small JSON object, replaced atomically (``os.replace`` locally, a single PUT
on object stores). A process killed while registering leaves at most a staging folder, which no
listing sees. Loading verifies every file against the manifest's sha256 and never unpickles.

This module is the only one that writes model bundles.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from fraud_dask.errors import UserError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: the monitoring reference (fraud_dask.monitor.reference), an optional file of a bundle
REFERENCE = "reference.json"
FORMAT = "fraud_dask.registry/1"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_LIBRARIES = ("xgboost", "dask", "distributed", "pandas", "numpy", "pyarrow", "fsspec", "numba")


@dataclass
class RegistryConf:
    """Schema of the ``registry`` config node.

    Attributes
    ----------
    path : str
        Registry root, a local folder or any fsspec URL (not under the run directory).
    name : str
        Model name: versions of one model live under ``<path>/<name>/``. Default
        ``fraud-${data.name}``: each data source has its own model (and champion).
    version : str
        Which version scoring uses: an alias (``champion``), ``latest`` or a number.
    alias : str
        The alias ``promote`` moves, and that training moves when ``promote_on_register``.
    register : bool
        Training registers its model at the end of the run.
    promote_on_register : bool
        Move ``alias`` to a newly registered version (the first version is always promoted).
    storage_options : dict
        fsspec options (credentials, ``client_kwargs``...).
    """

    path: str = "${paths.data_home}/registry"
    name: str = "fraud-${data.name}"
    version: str = "champion"
    alias: str = "champion"
    register: bool = True
    promote_on_register: bool = False
    storage_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelBundle:
    """A loaded registry version: the model and everything registered with it."""

    name: str
    version: int
    path: str
    model: Any  # fraud_dask.train.Model (XGBoostModel, LogisticModel...)
    features: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    #: the training reference for monitoring (``reference.json``, see docs/monitoring.md);
    #: None for bundles registered without one
    reference: dict[str, Any] | None = None

    @property
    def source(self) -> dict[str, Any] | None:
        """The source the model was trained on (``name``, redacted ``path``), if known."""
        return bundle_source(self.manifest, self.config)

    @property
    def training(self) -> dict[str, Any]:
        """The training period: ``fold``, ``start``, ``end`` (inclusive days), ``rows``,
        ``frauds``; empty for bundles registered before it was recorded."""
        return dict(self.manifest.get("training") or {})


class RegistryLookupError(UserError, KeyError):
    """No such model, version or alias; the message names what was asked and what exists."""


_SECRET_QUERY = ("key", "secret", "password", "passwd", "token", "sig", "credential", "auth")


def redact_url(url: str) -> str:
    """``url`` without credentials: user info becomes ``***`` and secret query values ``***``.

    ``s3://AKIA:pw@bucket/tx?X-Amz-Signature=abc`` -> ``s3://***@bucket/tx?X-Amz-Signature=***``;
    plain paths come back unchanged.
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(str(url))
    if not parts.scheme or not parts.netloc:
        return str(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = [
            (k, "***" if any(s in k.lower() for s in _SECRET_QUERY) and v else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="*/:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def source_record(data: Any) -> dict[str, Any] | None:
    """``{"name", "path"}`` of a ``data`` config node (path redacted), or None without a name."""
    data = _plain(data)
    if not isinstance(data, Mapping) or not data.get("name"):
        return None
    path = data.get("path")
    return {"name": str(data["name"]), "path": redact_url(str(path)) if path else None}


def bundle_source(
    manifest: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """A bundle's source: the manifest's record, else (older bundles) its config's ``data``."""
    recorded = manifest.get("source")
    if isinstance(recorded, Mapping) and recorded.get("name"):
        return dict(recorded)
    if isinstance(config, Mapping):
        return source_record(config.get("data"))
    return None


def _check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in ("aliases",):
        raise ValueError(
            f"registry: {kind} {value!r} is not allowed; use letters, digits, '_', '.' or '-' "
            "(at most 100 characters, not starting with a separator, not 'aliases')"
        )
    return value


def _is_local(fs: Any) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plain(value: Any) -> Any:
    """A JSON-ready copy of configs (DictConfig, dataclasses), numpy scalars and enums."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True, enum_to_str=True)
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        node = OmegaConf.structured(value)
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return value


def _json_bytes(value: Any) -> bytes:
    def default(v: Any) -> Any:
        if hasattr(v, "item") and callable(v.item):
            return v.item()
        if hasattr(v, "value"):
            return v.value
        if isinstance(v, dt.datetime | dt.date | Path):
            return str(v)
        raise TypeError(f"registry: cannot store a {type(v).__name__} as JSON: {v!r}")

    return (json.dumps(_plain(value), indent=2, sort_keys=True, default=default) + "\n").encode()


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a model bundle depends on."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for lib in (*_LIBRARIES, "fraud_dask"):
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def git_revision(where: str | Path | None = None) -> dict[str, Any]:
    """The git commit of the source tree (and whether it has uncommitted changes).

    Returns ``{"commit": None}`` outside a git checkout or without ``git``.
    """
    cwd = Path(where) if where else Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if commit.returncode:
            return {"commit": None}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def data_fingerprint(frame: Any) -> dict[str, Any]:
    """A content fingerprint of a (lazy) training frame, in one pass.

    The hash is the sum modulo 2**64 of pandas' per-row hashes, so it does not depend on the
    partitioning or the row order; any changed, added or removed row changes it.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame or pandas.DataFrame
        The rows the model was trained on.

    Returns
    -------
    dict
        ``rows``, ``row_hash_sum`` (hex), ``columns`` (name -> dtype).
    """
    import numpy as np
    import pandas as pd

    meta = pd.DataFrame({"rows": pd.Series(dtype="int64"), "hash": pd.Series(dtype="uint64")})
    if hasattr(frame, "map_partitions") and hasattr(frame, "npartitions"):
        parts = frame.map_partitions(_partition_hash, meta=meta).compute()
    else:
        parts = _partition_hash(frame)
    total = int(np.sum(parts["hash"].to_numpy(np.uint64), dtype=np.uint64))
    return {
        "rows": int(parts["rows"].sum()),
        "row_hash_sum": f"{total:016x}",
        "columns": {str(c): str(t) for c, t in frame.dtypes.items()},
    }


def _partition_hash(part: Any) -> Any:
    import numpy as np
    import pandas as pd

    hashes = pd.util.hash_pandas_object(part, index=False).to_numpy(np.uint64)
    total = np.sum(hashes, dtype=np.uint64)  # wraps modulo 2**64 on purpose
    return pd.DataFrame({"rows": [len(part)], "hash": np.array([total], dtype=np.uint64)})


class Registry:
    """A model registry rooted at an fsspec path (see the module docstring for the layout).

    Parameters
    ----------
    path : str
        Root folder or URL; created on first write.
    storage_options : dict, optional
        fsspec options.
    """

    def __init__(self, path: str, storage_options: Mapping[str, Any] | None = None) -> None:
        if not path:
            raise ValueError("registry: path is empty; set registry.path")
        self.url = str(path)
        self.fs, root = fsspec.core.url_to_fs(self.url, **dict(storage_options or {}))
        self.root = root.rstrip("/") or root
        self.local = _is_local(self.fs)

    @classmethod
    def from_conf(cls, conf: Any) -> Registry:
        """The registry of a ``registry`` config node (RegistryConf, DictConfig or mapping)."""
        options = conf.get("storage_options") if hasattr(conf, "get") else conf.storage_options
        return cls(str(conf["path"] if hasattr(conf, "get") else conf.path), _plain(options) or {})

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    # -- reading ----------------------------------------------------------------------------
    def _dir(self, name: str) -> str:
        return f"{self.root}/{_check_name('model name', name)}"

    def names(self) -> list[str]:
        """Model names that have at least one version."""
        if not self.fs.exists(self.root):
            return []
        out = []
        for entry in self.fs.ls(self.root, detail=False):
            base = entry.rstrip("/").rsplit("/", 1)[-1]
            if _NAME_RE.match(base) and self.versions(base):
                out.append(base)
        return sorted(out)

    def versions(self, name: str) -> list[int]:
        """Published versions of ``name`` (those with a manifest), ascending."""
        base = self._dir(name)
        if not self.fs.exists(base):
            return []
        found = []
        for entry in self.fs.ls(base, detail=False):
            tail = entry.rstrip("/").rsplit("/", 1)[-1]
            if tail.isdigit() and self.fs.exists(f"{base}/{tail}/{MANIFEST}"):
                found.append(int(tail))
        return sorted(found)

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version of ``name``."""
        folder = f"{self._dir(name)}/aliases"
        if not self.fs.exists(folder):
            return {}
        out = {}
        for entry in self.fs.ls(folder, detail=False):
            tail = entry.rstrip("/").rsplit("/", 1)[-1]
            if tail.endswith(".json") and not tail.startswith("."):
                out[tail[: -len(".json")]] = int(self._read_json(entry)["version"])
        return dict(sorted(out.items()))

    def alias_record(self, name: str, alias: str) -> dict[str, Any]:
        """The alias file: current ``version``, ``moved_at`` and the ``history`` of moves."""
        path = f"{self._dir(name)}/aliases/{_check_name('alias', alias)}.json"
        if not self.fs.exists(path):
            raise KeyError(f"registry {self.url}: model {name!r} has no alias {alias!r}")
        return self._read_json(path)

    def resolve(self, name: str, ref: str | int = "champion") -> int:
        """The version number ``ref`` points at: a number, ``latest`` or an alias.

        Raises
        ------
        RegistryLookupError
            A KeyError: no such model, version or alias (the message lists what exists).
        """
        versions = self.versions(name)
        if not versions:
            raise RegistryLookupError(
                f"registry {self.url}: no model named {name!r} (have {self.names()})"
            )
        text = str(ref).strip()

        def have(aliases: dict[str, int]) -> str:
            named = ", ".join(f"{a}={v}" for a, v in aliases.items()) or "none"
            return f"versions: {versions}; aliases: {named}"

        if text.lstrip("v").isdigit():
            number = int(text.lstrip("v"))
            if number not in versions:
                raise RegistryLookupError(
                    f"registry {self.url}: model {name!r} has no version {number}; "
                    f"{have(self.aliases(name))}"
                )
            return number
        if text == "latest":
            return versions[-1]
        aliases = self.aliases(name)
        if text not in aliases:
            raise RegistryLookupError(
                f"registry {self.url}: model {name!r} has no alias {text!r}; {have(aliases)} "
                "(use a number, 'latest' or an alias)"
            )
        return aliases[text]

    def show(self, name: str, ref: str | int = "champion") -> dict[str, Any]:
        """The manifest of one version, plus its aliases, folder, metrics, source and period.

        ``source`` is None and ``training`` empty when the bundle predates them and its config
        names no source.
        """
        version = self.resolve(name, ref)
        folder = f"{self._dir(name)}/{version}"
        manifest = self._read_json(f"{folder}/{MANIFEST}")
        aliases = [a for a, v in self.aliases(name).items() if v == version]
        metrics = self._read_json(f"{folder}/metrics.json")
        return manifest | {
            "path": self.fs.unstrip_protocol(folder),
            "aliases": aliases,
            "metrics": metrics,
            "source": self._source(folder, manifest),
            "training": dict(manifest.get("training") or {}),
        }

    def _source(self, folder: str, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        """The recorded source; for older bundles, the ``data`` node of their config.json."""
        found = bundle_source(manifest)
        if found is None and self.fs.exists(f"{folder}/config.json"):
            found = bundle_source(manifest, self._read_json(f"{folder}/config.json"))
        return found

    def list(self, name: str | None = None) -> list[dict[str, Any]]:
        """One summary row per version (of ``name``, or of every model), models not loaded.

        Each row: ``name``, ``version``, ``created``, ``aliases``, ``kind``, ``git_commit``,
        ``source`` (``name``, ``path``; None when unknown), ``training`` (``fold``, ``start``,
        ``end``, ``rows``, ``frauds``; empty for older bundles), ``rows`` (training rows) and
        ``headline`` (the test metrics registered with it).
        """
        rows = []
        for model in [name] if name else self.names():
            aliases = self.aliases(model)
            for version in self.versions(model):
                folder = f"{self._dir(model)}/{version}"
                m = self._read_json(f"{folder}/{MANIFEST}")
                training = dict(m.get("training") or {})
                rows.append(
                    {
                        "name": model,
                        "version": version,
                        "created": m.get("created"),
                        "aliases": [a for a, v in aliases.items() if v == version],
                        "kind": m.get("model", {}).get("kind"),
                        "git_commit": (m.get("git") or {}).get("commit"),
                        "source": self._source(folder, m),
                        "training": training,
                        "rows": training.get("rows", (m.get("fingerprint") or {}).get("rows")),
                        "headline": m.get("headline", {}),
                    }
                )
        return rows

    def _read_json(self, path: str) -> dict[str, Any]:
        with self.fs.open(path, "rb") as fh:
            return json.loads(fh.read())

    def load(self, name: str, ref: str | int = "champion", *, verify: bool = True) -> ModelBundle:
        """Load one version: every file checked against the manifest, nothing unpickled.

        Parameters
        ----------
        name : str
            Model name.
        ref : str or int
            Version number, ``latest`` or an alias (default ``champion``).
        verify : bool
            Check every file's size and sha256 against the manifest.

        Returns
        -------
        ModelBundle

        Raises
        ------
        KeyError
            Unknown model, version or alias.
        ValueError
            A file is missing or does not match the manifest (the file is named).
        """
        from fraud_dask.train import Model

        version = self.resolve(name, ref)
        folder = f"{self._dir(name)}/{version}"
        manifest = self._read_json(f"{folder}/{MANIFEST}")
        if manifest.get("format") != FORMAT:
            raise ValueError(
                f"{folder}/{MANIFEST}: format {manifest.get('format')!r}, expected {FORMAT!r}"
            )
        if verify:
            for rel, info in manifest["files"].items():
                path = f"{folder}/{rel}"
                if not self.fs.exists(path):
                    raise ValueError(f"registry: {path} is listed in the manifest but missing")
                with self.fs.open(path, "rb") as fh:
                    data = fh.read()
                if len(data) != info["bytes"] or _sha256(data) != info["sha256"]:
                    raise ValueError(
                        f"registry: {path} does not match its manifest (size {len(data)}, "
                        f"expected {info['bytes']}; sha256 differs): the bundle is damaged"
                    )
        model = Model.load(
            self.fs.unstrip_protocol(f"{folder}/model"), storage_options=self._options()
        )
        return ModelBundle(
            name=name,
            version=version,
            path=self.fs.unstrip_protocol(folder),
            model=model,
            features=self._read_json(f"{folder}/features.json"),
            config=self._read_json(f"{folder}/config.json"),
            metrics=self._read_json(f"{folder}/metrics.json"),
            manifest=manifest,
            reference=self._read_json(f"{folder}/{REFERENCE}")
            if REFERENCE in manifest["files"]
            else None,
        )

    def _options(self) -> dict[str, Any]:
        return dict(getattr(self.fs, "storage_options", {}) or {})

    # -- writing ----------------------------------------------------------------------------
    def register(
        self,
        name: str,
        model: Any,
        *,
        features: Any,
        config: Any,
        metrics: Mapping[str, Any] | None = None,
        fingerprint: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
        extra_files: Mapping[str, bytes] | None = None,
        promote: bool = False,
        alias: str = "champion",
    ) -> int:
        """Register a trained model as the next immutable version of ``name``.

        Parameters
        ----------
        name : str
            Model name.
        model : fraud_dask.train.Model
            The fitted model (saved in its own format: XGBoost UBJSON, JSON coefficients...).
        features : FeaturesConf, DictConfig or mapping
            The feature spec the model's inputs come from (scoring rebuilds features from it).
        config : DictConfig or mapping
            The resolved run config.
        metrics : mapping, optional
            Evaluation metrics (JSON-serialisable).
        fingerprint : mapping, optional
            Training-data fingerprint, e.g. from :func:`data_fingerprint`.
        source : mapping, optional
            The data source (a ``data`` config node or ``{"name", "path"}``); the path is
            stored redacted of credentials. Default: the ``data`` node of ``config``.
        training : mapping, optional
            The training period: ``fold``, ``start``, ``end`` (inclusive ISO days), ``rows``,
            ``frauds``.
        extra_files : mapping of str to bytes, optional
            More files of the bundle (a report, monitoring references), by relative name.
        promote : bool
            Move ``alias`` to the new version. The first version of a model always gets it.
        alias : str
            The alias to move.

        Returns
        -------
        int
            The new version number.
        """
        _check_name("alias", alias)
        plain_config = _plain(config)
        recorded_source = source_record(
            source
            if source is not None
            else (plain_config.get("data") if isinstance(plain_config, Mapping) else None)
        )
        base = self._dir(name)
        self.fs.makedirs(base, exist_ok=True)
        staging = f"{base}/.staging-{uuid.uuid4().hex}"
        files: dict[str, bytes] = {
            "features.json": _json_bytes(features),
            "config.json": _json_bytes(plain_config),
            "metrics.json": _json_bytes(dict(metrics or {})),
        }
        for rel, data in (extra_files or {}).items():
            if rel in files or rel == MANIFEST or rel.startswith(("model/", "/")) or ".." in rel:
                raise ValueError(f"registry: extra file name {rel!r} is reserved or unsafe")
            files[rel] = bytes(data)
        try:
            self.fs.makedirs(staging, exist_ok=True)
            model.save(
                self.fs.unstrip_protocol(f"{staging}/model"), storage_options=self._options()
            )
            for rel, data in files.items():
                self._write(f"{staging}/{rel}", data)
            digests = self._digest_folder(staging)
            manifest = {
                "format": FORMAT,
                "name": name,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "model": {k: v for k, v in model.describe().items() if k != "info"},
                "source": recorded_source,
                "training": dict(training or {}),
                "fingerprint": dict(fingerprint or {}),
                "libraries": library_versions(),
                "git": git_revision(),
                "headline": _headline(metrics or {}),
                "files": digests,
            }
            version = self._publish(base, staging, manifest)
        except BaseException:
            if self.fs.exists(staging):
                self.fs.rm(staging, recursive=True)
            raise
        log.info("registry %s: registered %s version %d", self.url, name, version)
        if promote or self.versions(name) == [version]:
            self.promote(name, version, alias=alias)
        return version

    def _write(self, path: str, data: bytes) -> None:
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "wb") as fh:
            fh.write(data)

    def _digest_folder(self, folder: str) -> dict[str, dict[str, Any]]:
        out = {}
        for path in sorted(self.fs.find(folder)):
            rel = path[len(folder) + 1 :]
            with self.fs.open(path, "rb") as fh:
                data = fh.read()
            out[rel] = {"bytes": len(data), "sha256": _sha256(data)}
        return out

    def _publish(self, base: str, staging: str, manifest: dict[str, Any]) -> int:
        """Give the staged bundle the next free version number; the manifest lands last."""
        for _ in range(100):
            version = max(self._all_numbers(base), default=0) + 1
            manifest["version"] = version
            body = _json_bytes(manifest)
            target = f"{base}/{version}"
            if self.local:
                self._write(f"{staging}/{MANIFEST}", body)
                try:
                    os.rename(staging, target)  # atomic; fails if the version exists
                except OSError:
                    self.fs.rm(f"{staging}/{MANIFEST}")
                    continue
                return version
            if self.fs.exists(target):
                continue
            for rel in manifest["files"]:
                self.fs.copy(f"{staging}/{rel}", f"{target}/{rel}")
            self._write(f"{target}/{MANIFEST}", body)
            self.fs.rm(staging, recursive=True)
            return version
        raise RuntimeError(f"registry {self.url}: could not claim a version number for {base}")

    def _all_numbers(self, base: str) -> builtins.list[int]:
        """Every numbered folder, published or not (a half-copied remote version included)."""
        self.fs.invalidate_cache()
        entries = self.fs.ls(base, detail=False) if self.fs.exists(base) else []
        return [int(t) for e in entries if (t := e.rstrip("/").rsplit("/", 1)[-1]).isdigit()]

    def promote(self, name: str, ref: str | int, alias: str = "champion") -> dict[str, Any]:
        """Point ``alias`` at version ``ref``, atomically; the previous target goes to history.

        Returns
        -------
        dict
            The new alias record (``version``, ``previous``, ``moved_at``, ``history``).
        """
        version = self.resolve(name, ref)
        folder = f"{self._dir(name)}/aliases"
        path = f"{folder}/{_check_name('alias', alias)}.json"
        self.fs.makedirs(folder, exist_ok=True)
        previous = self.alias_record(name, alias) if self.fs.exists(path) else None
        history = list(previous.get("history", [])) if previous else []
        if previous:
            history.append({"version": previous["version"], "moved_at": previous["moved_at"]})
        record = {
            "alias": alias,
            "version": version,
            "previous": previous["version"] if previous else None,
            "moved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "history": history[-100:],
        }
        body = _json_bytes(record)
        if self.local:
            tmp = f"{folder}/.{alias}.json.tmp-{uuid.uuid4().hex}"
            self._write(tmp, body)
            os.replace(tmp, path)
        else:
            self._write(path, body)  # one PUT: readers see the old or the new object
        log.info("registry %s: %s/%s -> version %d", self.url, name, alias, version)
        return record

    def clean_staging(self, name: str, older_than_s: float = 3600.0) -> builtins.list[str]:
        """Remove staging folders left by killed registrations (older than ``older_than_s``)."""
        base = self._dir(name)
        removed: builtins.list[str] = []
        if not self.fs.exists(base):
            return removed
        now = time.time()
        for entry in self.fs.ls(base, detail=True):
            tail = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if not tail.startswith(".staging-"):
                continue
            mtime = entry.get("mtime") or entry.get("LastModified") or entry.get("created")
            stamp = mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime or 0)
            if now - stamp >= older_than_s:
                self.fs.rm(entry["name"], recursive=True)
                removed.append(entry["name"])
        return removed


def _headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Scalar test metrics worth showing in a listing (from ``metrics['test']`` or the top)."""
    test = metrics.get("test")
    source: Mapping[str, Any] = test if isinstance(test, Mapping) else metrics
    keys = ("roc_auc", "average_precision", "card_precision_at_100", "recall_at_fpr")
    return {k: source[k] for k in keys if isinstance(source.get(k), int | float)}
