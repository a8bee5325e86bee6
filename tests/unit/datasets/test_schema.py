"""Dataset schemas are validated strictly, with hints that name locations and rules, never values."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from common.errors import ErrorCode, InputError
from node.datasets.schema import ColumnType, dump_schema, load_schema, parse_schema

SCHEMAS = Path(__file__).resolve().parents[3] / "benchmarks" / "datasets"


def test_shipped_flamby_schemas_declare_the_expected_columns() -> None:
    """Heart: 13 features + num with '?' and chol = 0 missing; TCGA: pid, 39 features, E and T."""
    heart = load_schema(SCHEMAS / "fed_heart_disease.schema.yaml")
    assert [c.name for c in heart.columns][-1] == "num"
    assert len(heart.columns) == 14
    assert heart.missing_values == ("?",)
    assert heart.column("chol").missing_values == (0,)
    assert heart.csv.header is False
    tcga = load_schema(SCHEMAS / "fed_tcga_brca.schema.yaml")
    names = [c.name for c in tcga.columns]
    assert (names[0], names[-2:], len(names)) == ("pid", ["E", "T"], 42)
    assert tcga.column("T").type is ColumnType.DECIMAL


def test_a_schema_survives_dump_and_load(tmp_path: Path) -> None:
    """Dumping a schema to YAML and reading it back gives the same schema, dates included."""
    schema = parse_schema(
        {
            "columns": [
                {"name": "seen", "type": "date", "bounds": ["2020-01-01", "2021-12-31"]},
                {"name": "n", "type": "integer", "levels": [1, 2], "missing_values": [-1, "NA"]},
            ]
        }
    )
    assert schema.column("seen").bounds == (date(2020, 1, 1), date(2021, 12, 31))
    path = tmp_path / "schema.yaml"
    path.write_text(dump_schema(schema), encoding="utf-8")
    assert load_schema(path) == schema


@pytest.mark.parametrize(
    ("document", "hint"),
    [
        ({"columns": []}, "columns: at least one column is needed"),
        ({"columns": [{"name": "a", "type": "float"}]}, "columns.0.type: enum"),
        ({"columns": [{"name": "a", "type": "string", "bounds": [0, 1]}]}, "columns.0: bounds are for integer"),
        ({"columns": [{"name": "a", "type": "integer", "bounds": [5, 1]}]}, "columns.0: lower bound above upper"),
        ({"columns": [{"name": "a", "type": "date", "bounds": [0, 1]}]}, "columns.0: date bounds expected"),
        ({"columns": [{"name": "a", "type": "decimal", "levels": [1]}]}, "columns.0: levels are for integer"),
        ({"columns": [{"name": "a", "type": "integer"}] * 2}, "columns: column names must be distinct"),
        ({"columns": [{"name": "a", "type": "integer", "unit": "mg"}]}, "columns.0.unit: extra_forbidden"),
        ({"csv": {"delimiter": ";;"}, "columns": [{"name": "a", "type": "integer"}]}, "csv.delimiter: string_too_long"),
        ([1, 2], "(root): not a mapping"),
    ],
)
def test_invalid_schemas_are_refused_with_locations(document: Any, hint: str) -> None:
    """Every rule breach is an INVALID_SCHEMA error whose hint starts with the location."""
    with pytest.raises(InputError) as caught:
        parse_schema(document)
    assert caught.value.code is ErrorCode.INVALID_SCHEMA
    assert caught.value.hints[0].startswith(hint)


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    """A YAML syntax error is refused with its line number only."""
    path = tmp_path / "bad.yaml"
    path.write_text("columns:\n  - {name: a, type: integer\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_schema(path)
    assert caught.value.code is ErrorCode.INVALID_SCHEMA
    assert caught.value.hints[0].startswith("line ")
