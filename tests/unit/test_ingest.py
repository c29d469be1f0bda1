"""Ingest: reading CSV/Parquet, normalising columns, deterministic hash split."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.errors import ConfigurationError, DataError
from components.ingest import core


def test_reads_penguins_csv_with_na_as_missing(penguins_csv):
    table = core.read_table(penguins_csv)
    assert table.num_rows == 344
    assert table.column("sex").null_count == 11
    assert "NA" not in table.column("sex").drop_null().to_pylist()
    assert table.schema.field("flipper_length_mm").type == pa.int64()


def test_split_is_deterministic_and_covers_every_row(penguins_csv):
    table = core.read_table(penguins_csv)
    train_a, eval_a, fingerprint_a = core.split_table(table, 0.2)
    train_b, eval_b, fingerprint_b = core.split_table(table, 0.2)
    assert train_a.equals(train_b) and eval_a.equals(eval_b)
    assert fingerprint_a == fingerprint_b
    assert train_a.num_rows + eval_a.num_rows == 344
    assert 0.1 < eval_a.num_rows / 344 < 0.3


def test_duplicate_rows_land_in_the_same_split():
    table = pa.table({"x": list(range(40)) * 5, "y": [str(i) for i in range(40)] * 5})
    train, evaluation, _ = core.split_table(table, 0.5)
    assert not set(train.column("x").to_pylist()) & set(evaluation.column("x").to_pylist())


def test_fingerprint_changes_with_content():
    table = pa.table({"x": list(range(100))})
    other = pa.table({"x": list(range(1, 101))})
    assert core.split_table(table, 0.2)[2] != core.split_table(other, 0.2)[2]


def test_ingest_writes_parquet_splits(tmp_path, penguins_csv):
    result = core.ingest(penguins_csv, str(tmp_path / "t.pq"), str(tmp_path / "e.pq"), 0.25)
    assert pq.read_table(tmp_path / "t.pq").num_rows == result.train_rows
    assert pq.read_table(tmp_path / "e.pq").num_rows == result.eval_rows
    assert result.train_rows + result.eval_rows == 344


def test_reads_parquet_file_and_folder(tmp_path):
    table = pa.table({"a": [1.5, 2.5], "b": ["x", "y"]})
    (tmp_path / "folder").mkdir()
    pq.write_table(table, tmp_path / "one.parquet")
    pq.write_table(table, tmp_path / "folder" / "part-0.parquet")
    pq.write_table(table, tmp_path / "folder" / "part-1.parquet")
    assert core.read_table(str(tmp_path / "one.parquet")).num_rows == 2
    assert core.read_table(str(tmp_path / "folder")).num_rows == 4


def test_normalises_names_and_types(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("Sepal Length,ok,flag,empty\n1.5,a,true,\n2.5,b,false,\n")
    table = core.read_table(str(path))
    assert table.column_names == ["Sepal_Length", "ok", "flag"]
    assert table.column("flag").to_pylist() == [1, 0]


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        core.read_table(str(tmp_path / "nope.csv"))


def test_unknown_format_is_a_clear_error(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="Cannot tell the format"):
        core.read_table(str(path))


def test_malformed_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match="Cannot read"):
        core.read_table(str(path))


def test_header_only_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="no rows"):
        core.read_table(str(path))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_eval_fraction_out_of_range_is_rejected(fraction, tmp_path, penguins_csv):
    with pytest.raises(ConfigurationError, match="eval_fraction"):
        core.ingest(penguins_csv, str(tmp_path / "t"), str(tmp_path / "e"), fraction)


def test_too_few_rows_to_split_is_a_clear_error():
    with pytest.raises(DataError, match="too few"):
        core.split_table(pa.table({"x": [1]}), 0.2)
