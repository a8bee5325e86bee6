"""``medfed node view run``: rows as JSON lines; an invalid view or unreadable input exits 2 with the reason."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medfed.cli import app

runner = CliRunner()
VIEW = {
    "resourceType": "ViewDefinition",
    "resource": "Observation",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()"},
                {"name": "value", "path": "value.ofType(Quantity).value"},
                {"name": "high", "path": "value.ofType(Quantity).value.highBoundary()"},
            ]
        }
    ],
}


def write(folder: Path, view: object, lines: list[str]) -> tuple[str, str]:
    view_path, input_path = folder / "view.json", folder / "input.ndjson"
    view_path.write_text(json.dumps(view))
    input_path.write_text("\n".join(lines) + "\n")
    return str(view_path), str(input_path)


def test_rows_are_printed_as_json_lines_in_column_order(tmp_path: Path) -> None:
    """Each row of the view is one JSON object per line; resources of other types are skipped."""
    view, data = write(
        tmp_path,
        VIEW,
        [
            '{"resourceType": "Observation", "id": "o1", "valueQuantity": {"value": 7.20}}',
            "",
            '{"resourceType": "Patient", "id": "p1"}',
            '{"resourceType": "Observation", "id": "o2"}',
        ],
    )
    result = runner.invoke(app, ["node", "view", "run", view, "--input", data])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines == ['{"id":"o1","value":7.2,"high":7.20999999}', '{"id":"o2","value":null,"high":null}']


def test_an_invalid_view_exits_2_naming_the_location_and_rule(tmp_path: Path) -> None:
    """A broken rule is reported on stderr with its location; nothing is printed on stdout."""
    bad = json.loads(json.dumps(VIEW))
    bad["select"][0]["column"][1]["name"] = "value"
    bad["select"][0]["column"][0]["name"] = "value"
    view, data = write(tmp_path, bad, ['{"resourceType": "Observation", "id": "o1"}'])
    result = runner.invoke(app, ["node", "view", "run", view, "--input", data])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "select[0].column[1].name: column name used twice in the view" in result.stderr


def test_a_view_failing_on_the_data_exits_2(tmp_path: Path) -> None:
    """Several values in a single-valued column stop the run with exit 2."""
    view_json = {"resource": "Patient", "select": [{"column": [{"name": "given", "path": "name.given"}]}]}
    view, data = write(tmp_path, view_json, ['{"resourceType": "Patient", "name": [{"given": ["A", "B"]}]}'])
    result = runner.invoke(app, ["node", "view", "run", view, "--input", data])
    assert result.exit_code == 2
    assert "several values" in result.stderr


def test_malformed_input_exits_2_naming_the_line(tmp_path: Path) -> None:
    """A line of the NDJSON that is not JSON is reported by number, not content."""
    view, data = write(tmp_path, VIEW, ['{"resourceType": "Observation", "id": "o1"}', "{secret-value"])
    result = runner.invoke(app, ["node", "view", "run", view, "--input", data])
    assert result.exit_code == 2
    assert "input: line 2" in result.stderr
    assert "secret-value" not in result.output


def test_a_missing_view_file_exits_2(tmp_path: Path) -> None:
    """An unreadable view file is an input error, not a crash."""
    result = runner.invoke(app, ["node", "view", "run", str(tmp_path / "none.json"), "--input", str(tmp_path)])
    assert result.exit_code == 2
