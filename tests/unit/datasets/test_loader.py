"""Files load with their declared types; missing codes become missing; values that break the schema refuse
the whole file with location-only hints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import ErrorCode, InputError
from node.datasets.loader import load_table
from node.datasets.schema import DatasetSchema, load_schema, parse_schema

SCHEMAS = Path(__file__).resolve().parents[3] / "benchmarks" / "datasets"

MIXED = parse_schema(
    {
        "missing_values": ["?"],
        "columns": [
            {"name": "id", "type": "string"},
            {"name": "age", "type": "integer", "bounds": [0, 120]},
            {"name": "chol", "type": "decimal", "bounds": [0, 800], "missing_values": [0]},
            {"name": "smoker", "type": "boolean"},
            {"name": "seen", "type": "date", "bounds": ["2000-01-01", "2030-12-31"]},
            {"name": "arm", "type": "string", "levels": ["a", "b"]},
        ],
    }
)


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _refusal(path: Path, schema: DatasetSchema = MIXED) -> InputError:
    with pytest.raises(InputError) as caught:
        load_table(path, schema)
    return caught.value


def test_heart_files_load_with_question_marks_and_zero_cholesterol_missing(shared_data: Path) -> None:
    """The four UCI files load; missing counts per column equal the data README's, plus chol = 0."""
    schema = load_schema(SCHEMAS / "fed_heart_disease.schema.yaml")
    folder = shared_data / "fed_heart_disease"
    tables = {c: load_table(folder / f"processed.{c}.data", schema) for c in ("cleveland", "hungarian", "va")}
    switzerland = load_table(folder / "processed.switzerland.data", schema)
    assert [len(t) for t in tables.values()] == [303, 294, 200]
    assert tables["cleveland"]["ca"].isna().sum() == 4
    assert tables["hungarian"]["chol"].isna().sum() == 23
    assert switzerland["chol"].isna().all()  # every Swiss cholesterol is recorded as 0
    raw = pd.read_csv(folder / "processed.va.data", header=None, na_values="?")
    assert tables["va"]["chol"].isna().sum() == raw[4].isna().sum() + (raw[4] == 0).sum()
    assert str(tables["va"]["age"].dtype) == "Int64"
    assert tables["cleveland"]["oldpeak"].dtype == np.float64


def test_tcga_loads_with_its_header(shared_data: Path) -> None:
    """brca.csv loads as 1,096 rows with every declared column, in order."""
    table = load_table(shared_data / "fed_tcga_brca" / "brca.csv", load_schema(SCHEMAS / "fed_tcga_brca.schema.yaml"))
    assert table.shape == (1096, 42)
    assert int(table["E"].sum()) == 151  # the 8 "Other"-region patients FLamby leaves out have no events


def test_types_and_missing_codes_are_enforced(tmp_path: Path) -> None:
    """Each type is parsed; '?', empty cells and numeric codes (0 and 0.0) become missing."""
    path = _csv(
        tmp_path,
        "id,age,chol,smoker,seen,arm\np1,63.0,233,true,2020-05-01,a\np2,?,0.0,0,,b\np3,41, 0 ,Yes,2021-01-31,?\n",
    )
    table = load_table(path, MIXED)
    assert table["age"].tolist() == [63, pd.NA, 41]
    assert table["chol"].isna().tolist() == [False, True, True]
    assert table["smoker"].tolist() == [True, False, True]
    assert table["seen"].isna().tolist() == [False, True, False]
    assert table["seen"].iloc[0] == pd.Timestamp("2020-05-01")
    assert table["arm"].isna().tolist() == [False, False, True]


def test_decimals_are_parsed_correctly_rounded(tmp_path: Path) -> None:
    """Decimal text reads as Python's float() reads it (pandas' fast parser can be one ulp off)."""
    schema = parse_schema({"csv": {"header": False}, "columns": [{"name": "x", "type": "decimal"}]})
    tokens = ["0.1", "2.675", "1.0000000000000002", "123456.789e-3", "-2.6", ".7"]
    table = load_table(_csv(tmp_path, "\n".join(tokens) + "\n"), schema)
    assert table["x"].tolist() == [float(t) for t in tokens]


@pytest.mark.parametrize(
    ("row", "hint"),
    [
        ("p9,130,200,true,2020-01-01,a", "age: 1 value(s) above the upper bound (first at row 2)"),
        ("p9,-1,200,true,2020-01-01,a", "age: 1 value(s) below the lower bound (first at row 2)"),
        ("p9,41.5,200,true,2020-01-01,a", "age: 1 value(s) not a whole number (first at row 2)"),
        ("p9,41,abc,true,2020-01-01,a", "chol: 1 value(s) not a finite number (first at row 2)"),
        ("p9,41,nan,true,2020-01-01,a", "chol: 1 value(s) not a finite number (first at row 2)"),
        ("p9,41,200,maybe,2020-01-01,a", "smoker: 1 value(s) not a boolean (first at row 2)"),
        ("p9,41,200,true,01/02/2020,a", "seen: 1 value(s) not an ISO date (YYYY-MM-DD) (first at row 2)"),
        ("p9,41,200,true,1999-12-31,a", "seen: 1 value(s) before the lower bound (first at row 2)"),
        ("p9,41,200,true,2020-01-01,c", "arm: 1 value(s) outside the declared levels (first at row 2)"),
    ],
)
def test_a_value_breaking_the_schema_refuses_the_file(tmp_path: Path, row: str, hint: str) -> None:
    """One bad value refuses the whole file; the hint names column, rule, count and row, not the value."""
    path = _csv(tmp_path, "id,age,chol,smoker,seen,arm\np1,63,233,true,2020-05-01,a\n" + row + "\n")
    error = _refusal(path)
    assert error.code is ErrorCode.INVALID_DATASET
    assert error.hints == (hint,)


def test_layout_mismatches_are_refused(tmp_path: Path) -> None:
    """A header that differs from the schema, or a wrong number of columns, refuses the file."""
    assert _refusal(_csv(tmp_path, "id,years,chol,smoker,seen,arm\n")).hints[0].startswith("header:")
    headerless = parse_schema({"csv": {"header": False}, "columns": [{"name": "a", "type": "integer"}]})
    assert _refusal(_csv(tmp_path, "1,2\n3,4\n"), headerless).hints == ("file: 2 columns, the schema declares 1",)
    assert _refusal(tmp_path / "absent.csv").hints == ("file: not found",)


def test_parquet_loads_with_the_same_rules(tmp_path: Path) -> None:
    """A Parquet file is typed and checked like a CSV; extra or absent columns are named."""
    frame = pd.DataFrame(
        {
            "id": ["p1", "p2"],
            "age": [63, 41],
            "chol": [233.5, 0.0],
            "smoker": [True, False],
            "seen": pd.to_datetime(["2020-05-01", "2021-01-31"]),
            "arm": ["a", "?"],
        }
    )
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    table = load_table(path, MIXED)
    assert table["age"].tolist() == [63, 41]
    assert table["chol"].isna().tolist() == [False, True]
    assert table["arm"].isna().tolist() == [False, True]
    frame.assign(extra=1).drop(columns="arm").to_parquet(path)
    assert set(_refusal(path).hints) == {"extra: not in the schema", "arm: absent from the file"}
    frame.assign(age=[130, 41]).to_parquet(path)
    assert _refusal(path).hints == ("age: 1 value(s) above the upper bound (first at row 1)",)
