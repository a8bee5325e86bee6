"""Run the official SQL-on-FHIR v2 test suite against medfed's view engine and print pass counts.

Usage: ``python scripts/sof_conformance.py /tmp/sof-tests [-v]``, where the folder holds the suite's
``*.json`` files (``tests/`` of the FHIR/sql-on-fhir-v2 repository; they are another project's files
and stay out of this repository). Each case runs through ``node.views.run.view_lines``, the code path
of ``medfed node view run``; rows are compared as JSON, order-insensitively.

A case passes when: ``expect`` rows equal the output rows as a multiset (numbers compared by value)
and, with ``expectColumns``, the output columns are those, in that order; ``expectError`` (or the
older ``error`` key) and evaluation raises an InvalidViewError. Cases written for drafts before
``resource`` became required (a view without ``resource`` that expects rows) are reported as legacy,
not counted as failures; ``--upgrade-legacy`` also runs them with the file's one resource type as
``resource`` and the drafts' ``"type"`` annotations removed, and reports those counts apart.
Exit status: 0 when every counted case passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from node.views.errors import InvalidViewError
from node.views.run import view_lines


def _canonical(value: Any) -> Any:
    """A hashable, order-preserving form of a JSON value with numbers compared by value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return ("number", Decimal(str(value)).normalize())
    if isinstance(value, list):
        return ("list", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, _canonical(v)) for k, v in value.items())))
    return repr(value)


def _upgraded(view: Any) -> Any:
    """A draft-era view without the drafts' ``"type": "select"``-style annotations."""
    if isinstance(view, list):
        return [_upgraded(v) for v in view]
    if not isinstance(view, dict):
        return view
    return {k: _upgraded(v) for k, v in view.items() if not (k == "type" and v in _DRAFT_TYPES)}


_DRAFT_TYPES = frozenset(("select", "column", "forEach", "forEachOrNull", "unionAll"))


def _run_case(case: dict[str, Any], resources: list[dict[str, Any]]) -> tuple[str, str]:
    """('pass'|'fail'|'legacy', reason) for one test case."""
    view = case.get("view")
    expects_error = bool(case.get("expectError")) or "error" in case
    legacy = isinstance(view, dict) and "resource" not in view and not expects_error
    try:
        lines = list(view_lines(view if isinstance(view, dict) else {}, resources))
    except InvalidViewError as exc:
        if expects_error:
            return "pass", ""
        return ("legacy" if legacy else "fail"), f"raised {exc.code}: {'; '.join(exc.hints)}"
    if expects_error:
        return "fail", f"expected an error, got {len(lines)} row(s)"
    if "expect" not in case:
        return "legacy", "case has neither expect nor expectError"
    rows = [json.loads(line, parse_float=Decimal) for line in lines]
    want = Counter(_canonical(row) for row in case["expect"])
    got = Counter(_canonical(row) for row in rows)
    if want != got:
        return (
            "legacy" if legacy else "fail"
        ), f"rows differ: missing {list(want - got)[:2]}, extra {list(got - want)[:2]}"
    columns = case.get("expectColumns")
    if columns is not None and rows and list(rows[0]) != columns:
        return "fail", f"columns {list(rows[0])} != {columns}"
    return "pass", ""


def main() -> int:
    """Run every file of the suite; print per-file and total counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("-v", "--verbose", action="store_true", help="print each failing case and why")
    parser.add_argument("--upgrade-legacy", action="store_true", help="also run legacy cases, upgraded")
    args = parser.parse_args()
    files = sorted(args.folder.glob("*.json"))
    if not files:
        print(f"no *.json test files in {args.folder}")
        return 2
    totals: Counter[str] = Counter()
    for path in files:
        suite = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        counts: Counter[str] = Counter()
        for case in suite.get("tests", []):
            resources = suite.get("resources", [])
            outcome, reason = _run_case(case, resources)
            counts[outcome] += 1
            if outcome == "legacy" and args.upgrade_legacy:
                types = {r.get("resourceType") for r in resources}
                upgraded = {**case, "view": {**_upgraded(case["view"]), "resource": types.pop()}}
                again, why = _run_case(upgraded, resources) if not types else ("fail", "several resource types")
                counts["upgraded " + again] += 1
                outcome, reason = f"legacy, upgraded: {again}", why or reason
            if not outcome.endswith("pass") and args.verbose:
                print(f"  {path.name} :: {case.get('title')}: {outcome}: {reason}")
        totals += counts
        legacy = f" ({counts['legacy']} legacy" if counts["legacy"] else ""
        if legacy and args.upgrade_legacy:
            legacy += f", {counts['upgraded pass']} pass when upgraded"
        legacy += ")" if legacy else ""
        print(f"{path.name:28s} {counts['pass']:3d}/{counts['pass'] + counts['fail']:3d} passed{legacy}")
    counted = totals["pass"] + totals["fail"]
    print(f"{'total':28s} {totals['pass']:3d}/{counted:3d} passed, {totals['legacy']} legacy cases not counted")
    if args.upgrade_legacy:
        print(f"{'legacy, upgraded':28s} {totals['upgraded pass']:3d}/{totals['legacy']:3d} passed")
    return 0 if totals["fail"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
