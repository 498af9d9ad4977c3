"""Generated data knows its options: another option never silently reuses it (issue 14)."""

from __future__ import annotations

import json

import pytest

from fraud_dask.config import compose
from fraud_dask.data.io import list_files
from fraud_dask.data.synthetic.manifest import MANIFEST, check_reuse, generator_options
from fraud_dask.data.synthetic.write import write_synthetic
from fraud_dask.errors import UserError

SIZE = [
    "data.synthetic.n_rows=3000",
    "data.synthetic.n_days=10",
    "data.synthetic.customers_per_block=100",
    "data.synthetic.rows_per_partition=1500",
]


def _data(tmp_path, *overrides: str):
    cfg = compose(
        [f"paths.data_home={tmp_path / 'home'}", *SIZE, *overrides],
        run_dir=tmp_path / "run",
        typed=True,
    )
    return cfg.data


def test_generated_data_is_reused_only_with_the_options_that_made_it(client, tmp_path):
    data = _data(tmp_path)
    assert check_reuse(data) == "missing"
    written = write_synthetic(data, client)
    assert "replaced" not in written
    record = json.loads((tmp_path / "home" / "synthetic" / "transactions" / MANIFEST).read_text())
    assert record["options"] == generator_options(data.synthetic)
    assert record["options"]["n_rows"] == 3000 and "rows_per_partition" not in record["options"]
    # the record is no data file: readers still see the Parquet files only
    _, _, files = list_files(str(data.path))
    assert files and all(f.endswith(".parquet") for f in files)

    assert check_reuse(data) == "same"
    # partitioning never changes the rows: the data is still good
    assert check_reuse(_data(tmp_path, "data.synthetic.rows_per_partition=700")) == "same"
    # an option that changes the rows is one line naming data.path and what differs
    with pytest.raises(UserError) as info:
        check_reuse(_data(tmp_path, "data.synthetic.n_rows=2000", "data.synthetic.fraud_rate=0.05"))
    message = str(info.value)
    assert message.startswith(f"data.path={data.path} holds synthetic data generated with other")
    assert "n_rows: 3000 -> 2000" in message and "fraud_rate:" in message
    assert "task=generate" in message and "data.path=..." in message
    # a nested option (the generator's drift, its label delays) counts as well
    with pytest.raises(UserError, match="label_delay.genuine_days: 7.0 -> 3.0"):
        check_reuse(_data(tmp_path, "data.synthetic.label_delay.genuine_days=3"))
    # another folder for other options: nothing there yet
    other = _data(tmp_path, "data.synthetic.n_rows=2000", f"data.path={tmp_path / 'small'}")
    assert check_reuse(other) == "missing"

    # generate with other options replaces the data in place, and says so
    smaller = _data(tmp_path, "data.synthetic.n_rows=2000")
    replaced = write_synthetic(smaller, client)
    assert replaced["rows_written"] == 2000
    assert "n_rows: 3000 -> 2000" in replaced["replaced"]
    assert check_reuse(smaller) == "same"
    with pytest.raises(UserError):
        check_reuse(data)


def test_data_without_a_record_is_used_with_a_warning(client, tmp_path, caplog):
    data = _data(tmp_path)
    write_synthetic(data, client)
    (tmp_path / "home" / "synthetic" / "transactions" / MANIFEST).unlink()
    with caplog.at_level("WARNING", logger="fraud_dask.data.synthetic.manifest"):
        assert check_reuse(data) == "unrecorded"
    assert "without a generator record" in caplog.text
    assert "data without a generator record" in write_synthetic(data, client)["replaced"]
