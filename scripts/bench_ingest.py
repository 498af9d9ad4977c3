"""Ingest + validation throughput (rows/s) on generated raw Parquet (see scripts/bench-ingest)."""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from fraud_dask.cluster import LocalClusterConf, connect
from fraud_dask.data import load_transactions, write_dataset
from fraud_dask.tasks import ingest

START = pd.Timestamp("2025-01-01")


def raw_chunk(i: int, rows: int, bad_every: int) -> pd.DataFrame:
    """Raw rows in a producer's own column names; about 1/bad_every of them are bad."""
    rng = np.random.default_rng(i)
    ts = START + pd.to_timedelta(np.sort(rng.integers(0, 90 * 86400, rows)), unit="s")
    frame = pd.DataFrame(
        {
            "txn": np.arange(i * rows, (i + 1) * rows, dtype="int64"),
            "time": ts.astype("datetime64[us]"),
            "card": rng.integers(0, 200_000, rows),
            "amt": rng.gamma(2.0, 30.0, rows).round(2),
            "term": rng.integers(0, 20_000, rows),
            "fraud": (rng.random(rows) < 0.007).astype("int64"),
        }
    )
    bad = np.flatnonzero(rng.random(rows) < 1 / bad_every)
    kinds = bad % 3
    frame.loc[bad[kinds == 0], "amt"] = -1.0
    frame.loc[bad[kinds == 1], "fraud"] = 2
    frame.loc[bad[kinds == 2], "txn"] = 0  # duplicates of tx 0
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--bad-every", type=int, default=1000)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. cluster.n_workers=2")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ingest-"))
    per_file = args.rows // args.files
    mapping = {
        "txn": "tx_id",
        "time": "ts",
        "card": "card_id",
        "amt": "amount",
        "term": "terminal_id",
        "fraud": "is_fraud",
    }
    # Built by hand (not composed) so the benchmark needs only the data and cluster schemas.
    cfg = OmegaConf.create(
        {
            "cluster": OmegaConf.structured(LocalClusterConf),
            "data": {"name": "bench", "path": str(work / "raw"), "columns": mapping},
            "task": {"name": "ingest", "dedupe": True},
            "run_dir": str(work / "run"),
        }
    )
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(args.overrides))
    with connect(cfg.cluster) as client:
        meta = raw_chunk(0, 0, args.bad_every)
        raw = dd.from_map(
            raw_chunk, range(args.files), rows=per_file, bad_every=args.bad_every, meta=meta
        )
        t = time.perf_counter()
        write_dataset(raw, str(work / "raw"), partition_on=None)
        gen_s = time.perf_counter() - t

        t = time.perf_counter()
        n_fast = int(load_transactions(cfg.data).map_partitions(len).sum().compute())
        fast_s = time.perf_counter() - t

        report = ingest.run(cfg, client)
        workers = len(client.scheduler_info()["workers"])
    out = {
        "rows": per_file * args.files,
        "files": args.files,
        "workers": workers,
        "machine": f"{platform.node()} {platform.machine()}",
        "date": pd.Timestamp.now().strftime("%Y-%m-%d"),
        "write_raw_s": round(gen_s, 1),
        "load_fast_path_s": round(fast_s, 1),
        "load_fast_path_rows_per_s": round(per_file * args.files / fast_s),
        "ingest_s": report["seconds"],
        "ingest_rows_per_s": report["rows_per_s"],
        "rows_in": report["rows_in"],
        "rows_kept": report["rows_kept"],
        "rows_quarantined": report["rows_quarantined"],
        "by_reason": {k: v for k, v in report["by_reason"].items() if v},
        "fast_path_rows": n_fast,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
