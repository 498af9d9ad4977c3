"""Fuzz test of the reader: generated malformed sources never crash ``task=ingest`` or lose a row.

Hypothesis writes one to four Parquet files with random column types (which may differ from file
to file), nulls, text in numeric columns, over-long strings, card numbers, timestamps naive,
zoned, as text with and without offsets, out of range or unparseable, empty files and files that
lack a required column. Each source is ingested on the shared cluster; the only allowed outcomes:

- a structural problem: a :class:`~fraud_dask.errors.UserError` that names the file (or the
  source) and the column;
- otherwise rows in = kept + quarantined, equal to the rows pandas reads from the raw files, both
  datasets written with exactly those rows, each quarantined row pointing at a distinct
  (file, row) of the source, and no raw card number anywhere in the outputs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from fraud_dask.data.pan import luhn_valid
from fraud_dask.errors import UserError
from fraud_dask.tasks import ingest

MAX_LENGTH = 40  # data.max_value_length: "huge" strings stay cheap to generate
PANS = ["4111111111111111", "5500 0000 0000 0004", "4012-8888-8888-1881"]
assert all(luhn_valid(p.replace(" ", "").replace("-", "")) for p in PANS)

REQUIRED = ("tx_id", "ts", "card_id", "amount", "merchant_id")
# The first kind of each column is a sane one: Hypothesis starts from the first choices.
KINDS: dict[str, tuple[str, ...]] = {
    "tx_id": ("int", "text", "int"),
    "ts": ("ts", "ts_text", "ts", "epoch"),
    "card_id": ("int", "text", "dict"),
    "amount": ("float", "int", "text", "float"),
    "merchant_id": ("int", "text"),
    "is_fraud": ("int", "bool", "text", "float"),
    "x_extra": ("int", "float", "bool", "text", "dict", "null", "ts", "ts_text"),
    "y_extra": ("text", "dict", "null", "int"),
}
PRESENT = [True] * 7 + [False]  # a value, a column: present 7 times in 8


def one_in(k: int) -> Any:
    """True once in ``k`` draws (False first, the simplest choice)."""
    return st.sampled_from([False] * (k - 1) + [True])


texts = st.one_of(
    st.text(alphabet="ab 1.-x", max_size=8),
    st.sampled_from(["12.5", "abc", "", " 3 ", "1e3", "inf", "NaN", "-4", "0", "1"]),
    st.sampled_from(PANS).map(lambda p: f"ref {p}"),
    st.sampled_from(PANS),
    st.integers(MAX_LENGTH + 1, 3 * MAX_LENGTH).map(lambda k: "z" * k),
)
ts_texts = st.one_of(
    st.datetimes(min_value=pd.Timestamp("2021-01-01"), max_value=pd.Timestamp("2024-12-31")).map(
        lambda d: d.isoformat(sep=" ")
    ),
    st.datetimes(min_value=pd.Timestamp("2021-01-01"), max_value=pd.Timestamp("2024-12-31")).map(
        lambda d: d.isoformat() + "+02:00"
    ),
    st.sampled_from(["2024-02-30 10:00:00", "yesterday", "1899-01-01", "2400-01-01T00:00:00Z"]),
    texts,
)
instants = st.datetimes(
    min_value=pd.Timestamp("1990-01-01"), max_value=pd.Timestamp("2262-01-01")
).map(lambda d: pd.Timestamp(d).as_unit("us"))
recent = st.datetimes(
    min_value=pd.Timestamp("2021-01-01"), max_value=pd.Timestamp("2024-12-31")
).map(lambda d: pd.Timestamp(d).as_unit("us"))


def _values(draw: Any, kind: str, n: int) -> pa.Array:
    def many(strategy: Any) -> list[Any]:
        # about one value in eight is null, so that many rows survive every check
        maybe = st.tuples(st.sampled_from(PRESENT), strategy).map(lambda t: t[1] if t[0] else None)
        return draw(st.lists(maybe, min_size=n, max_size=n))

    if kind == "int":
        return pa.array(many(st.integers(-(2**40), 2**40)), pa.int64())
    if kind == "epoch":  # seconds, but no data.timestamp.unit is set: a structural error
        return pa.array(many(st.integers(1_600_000_000, 1_700_000_000)), pa.int64())
    if kind == "float":
        floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
        return pa.array(many(floats), pa.float64())
    if kind == "bool":
        return pa.array(many(st.booleans()), pa.bool_())
    if kind == "text":
        return pa.array(many(texts), pa.string())
    if kind == "dict":
        return pa.array(many(texts), pa.string()).dictionary_encode()
    if kind == "null":
        return pa.nulls(n)
    if kind == "ts":
        zone = draw(st.sampled_from([None, "UTC", "Europe/Paris", "America/New_York"]))
        values = many(st.one_of(recent, recent, instants))
        return pa.array(values, pa.timestamp("us")).cast(pa.timestamp("us", tz=zone))
    if kind == "ts_text":
        return pa.array(many(ts_texts), pa.string())
    raise AssertionError(kind)


@st.composite
def sources(draw: Any) -> list[pa.Table]:
    """One to four tables; a column's kind is drawn per file, so files may disagree."""
    tables = []
    base = {col: draw(st.sampled_from(kinds)) for col, kinds in KINDS.items()}
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.sampled_from([8, 20, 3, 1, 0]))
        columns = {}
        for col, kinds in KINDS.items():
            kind = draw(st.sampled_from(kinds)) if draw(one_in(5)) else base[col]
            if col not in REQUIRED and draw(one_in(4)):
                continue  # an optional column missing from this file
            if col in REQUIRED and draw(one_in(60)):
                continue  # a required column missing: structural
            columns[col] = _values(draw, kind, n)
        tables.append(pa.table(columns))
    return tables


def _outputs_text(folder: Path) -> str:
    frames = [pd.read_parquet(f) for f in sorted(folder.rglob("*.parquet"))]
    return "\n".join(f.astype(str).to_csv(index=False) for f in frames)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(tables=sources(), grouped=st.booleans())
def test_reader_never_crashes_and_never_loses_a_row(client, tables, grouped) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        root.mkdir()
        names = []
        for i, table in enumerate(tables):
            names.append(f"part-{i}.parquet")
            pq.write_table(table, root / names[-1])
        data = {
            "name": "fuzz",
            "path": str(root),
            "max_value_length": MAX_LENGTH,
            "rows_per_partition": 1000 if grouped else None,
            "timestamp": {"valid_from": "2000-01-01", "valid_until": "2030-01-01"},
            "pan": {"key": "fuzz-key"},
        }
        run = Path(tmp) / "run"
        cfg = OmegaConf.create({"data": data, "run_dir": str(run), "task": {}})
        try:
            report = ingest.run(cfg, client)
        except UserError as exc:
            message = str(exc)
            assert str(root) in message or any(name in message for name in names), message
            return

        raw_rows = sum(len(pd.read_parquet(root / name)) for name in names)
        assert report["rows_in"] == raw_rows
        assert report["rows_in"] == report["rows_kept"] + report["rows_quarantined"]
        assert report["rows_quarantined"] == sum(report["by_reason"].values())
        kept = pd.read_parquet(report["output"]) if report["rows_kept"] else None
        assert (0 if kept is None else len(kept)) == report["rows_kept"]
        quarantine = pd.read_parquet(report["quarantine"])
        assert len(quarantine) == report["rows_quarantined"]
        where = list(zip(quarantine["source_file"], quarantine["source_row"], strict=True))
        assert len(set(where)) == len(where)
        files = {str(root / name): len(t) for name, t in zip(names, tables, strict=True)}
        assert all(0 <= row < files[f] for f, row in where)
        written = _outputs_text(run)
        for pan in PANS:
            assert pan not in written and pan.replace(" ", "").replace("-", "") not in written
        assert "z" * (MAX_LENGTH + 1) not in written
