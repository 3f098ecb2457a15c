"""Arrow table helpers of `store.tables`: `sort_rows` gives exactly the rows `sort_by` gives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from coderag_assets.store import dictionary_encoded, sort_rows

SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("path", pa.string()),
        ("line", pa.int32()),
        ("column", pa.int32()),
        ("context", pa.string()),
    ]
)
KEYS = ("name", "path", "line", "column")


def occurrence_like(rows: int, seed: int) -> pa.Table:
    """Rows with few distinct strings (non-ASCII and prefixes of each other included), many
    ties on every key and an id column that tells whether equal keys kept their order."""
    rng = np.random.default_rng(seed)
    names = ["a", "ab", "B", "b", "_x", "é", "z", "aé", ""]
    paths = ["src/a.py", "src/a.pyi", "src/b.py", "Src/a.py", "é/x.go"]
    return pa.table(
        {
            "name": pa.array([names[i] for i in rng.integers(0, len(names), rows)]),
            "path": pa.array([paths[i] for i in rng.integers(0, len(paths), rows)]),
            "line": pa.array(rng.integers(1, 40, rows), pa.int32()),
            "column": pa.array(rng.integers(1, 5, rows), pa.int32()),
            "context": pa.array(["code"] * rows),
        }
    ).append_column("id", pa.array(np.arange(rows)))


def sorted_by(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    return table.sort_by([(key, "ascending") for key in keys])


@pytest.mark.parametrize("keys", [KEYS, ("path", "line", "column"), ("line",)])
def test_sort_rows_equals_sort_by_on_plain_strings(keys: tuple[str, ...]) -> None:
    table = occurrence_like(5000, seed=1)
    assert sort_rows(table, keys).equals(sorted_by(table, keys))


def test_sort_rows_equals_sort_by_on_dictionaries_read_from_parquet(tmp_path) -> None:
    """The way the stages use it: a Parquet file of several row groups read with its strings
    as dictionaries (a dictionary per row group), plus new rows cast to that schema."""
    table = occurrence_like(6000, seed=2)
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=1000)
    encoded_schema = dictionary_encoded(table.schema, ("name", "path", "context"))
    read = pq.read_table(tmp_path / "t.parquet", read_dictionary=["name", "path", "context"])
    assert read.column("name").num_chunks > 1
    added = occurrence_like(300, seed=3)
    mixed = pa.concat_tables([read.cast(encoded_schema), added.cast(encoded_schema)])
    expected = sorted_by(pa.concat_tables([table, added]), KEYS)
    assert sort_rows(mixed, KEYS).cast(table.schema).equals(expected)


def test_sort_rows_ranks_a_value_repeated_in_the_dictionary_once() -> None:
    """Equal strings behind different dictionary entries still tie (then the next key wins)."""
    names = pa.DictionaryArray.from_arrays(pa.array([0, 1, 0, 1], pa.int32()), ["x", "x"])
    table = pa.table({"name": names, "line": pa.array([4, 3, 2, 1], pa.int32())})
    assert sort_rows(table, ("name", "line")).column("line").to_pylist() == [1, 2, 3, 4]


def test_sort_rows_with_wide_keys_and_nulls_still_matches() -> None:
    wide = pa.table(
        {
            "a": pa.array([2**40, 1, 2**40, 0], pa.int64()),
            "b": pa.array([2**30, 5, 1, 7], pa.int64()),
            "c": pa.array([9, 8, 7, 6], pa.int64()),
        }
    )  # 41 + 31 + 4 bits: too wide to pack into one int64
    assert sort_rows(wide, ("a", "b", "c")).equals(sorted_by(wide, ("a", "b", "c")))
    with_nulls = pa.table({"name": pa.array(["b", None, "a"]), "line": pa.array([1, 2, 3])})
    assert sort_rows(with_nulls, ("name", "line")).equals(sorted_by(with_nulls, ("name", "line")))


def test_dictionary_encoded_changes_only_the_named_string_columns() -> None:
    encoded = dictionary_encoded(SCHEMA, ("name", "line", "context"))
    assert encoded.field("name").type == pa.dictionary(pa.int32(), pa.string())
    assert encoded.field("context").type == pa.dictionary(pa.int32(), pa.string())
    assert encoded.field("path").type == pa.string()
    assert encoded.field("line").type == pa.int32()  # not a string: left alone
