"""``medfed node view run``: a ViewDefinition over an NDJSON file, without a node, as JSON lines.

The CLI and the conformance runner (``scripts/sof_conformance.py``) share these functions, so the
official test suite checks exactly what an analyst runs. JSON is read with exact decimals
(``parse_float=Decimal``) so that ``1.0`` keeps its precision for ``lowBoundary``/``highBoundary``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from common.errors import ErrorCode, InputError
from node.views.definition import ViewDefinition, parse_view
from node.views.evaluate import evaluate_view

__all__ = ["load_view", "read_ndjson", "row_lines", "view_lines"]


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def load_view(path: Path) -> ViewDefinition:
    """Read and validate a ViewDefinition file; InputError for unreadable JSON, InvalidViewError for rules."""
    try:
        raw = _loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(detail=f"cannot read the view file ({type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise InputError(ErrorCode.MALFORMED_JSON, hints=[f"view: line {exc.lineno}, column {exc.colno}"]) from None
    return parse_view(raw)


def read_ndjson(path: Path) -> Iterator[dict[str, Any]]:
    """The resources of an NDJSON file, one per non-blank line; InputError names a bad line's number."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(detail=f"cannot read the input file ({type(exc).__name__})") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                resource = _loads(line)
            except json.JSONDecodeError:
                raise InputError(ErrorCode.MALFORMED_JSON, hints=[f"input: line {number}"]) from None
            if not isinstance(resource, dict):
                raise InputError(ErrorCode.INVALID_RESOURCE, hints=[f"input: line {number}: not a JSON object"])
            yield resource


def row_lines(rows: Iterable[Mapping[str, object]]) -> Iterator[str]:
    """Each row as one line of JSON (keys in column order)."""
    for row in rows:
        yield orjson.dumps(row).decode()


def view_lines(view: ViewDefinition | Mapping[str, Any], resources: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The JSON lines ``medfed node view run`` prints for ``view`` over ``resources``."""
    return row_lines(evaluate_view(view, resources))
