"""Running a ViewDefinition over resources: the rows each resource yields.

The row model of SQL-on-FHIR v2:

* a resource of another type, or one that fails a ``where`` path, yields no row; a ``where`` path
  that yields anything but one boolean (or nothing, which counts as false) is an error;
* a select's iteration (``forEach``, ``forEachOrNull``, ``repeat``) gives its foci, or the select's
  own focus; per focus, its columns, each nested select and its ``unionAll`` branches (concatenated)
  are cross-joined, in that column order; sibling selects are cross-joined the same way;
* ``forEachOrNull`` over nothing yields one row whose columns are evaluated on no input (null, or 0
  for ``%rowIndex``), and so does everything nested under it;
* ``repeat`` follows its paths recursively, depth first, and yields every node reached (not the start);
* ``%rowIndex`` is the 0-based position of the focus in its iteration (0 outside any iteration);
* a column yields its single value or null, a list with ``collection: true``, and several values
  without it are an error.

Errors raised while evaluating carry the location in the view and the rule, never a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import product
from typing import Any

from node.views.definition import Select, ViewDefinition, parse_view
from node.views.errors import InvalidViewError
from node.views.fhirpath import CompiledPath, Env, Item, to_json, wrap

__all__ = ["evaluate_resource", "evaluate_view"]

Row = dict[str, object]
Variables = dict[str, Sequence[Item]]
_MAX_REPEAT_DEPTH = 64


def _run(path: CompiledPath, focus: Sequence[Item], variables: Variables, location: str) -> list[Item]:
    try:
        return path.evaluate(focus, variables)
    except InvalidViewError as exc:
        raise exc.at(location) from None


def _repeat(paths: Sequence[CompiledPath], start: Item, variables: Variables, location: str) -> list[Item]:
    found: list[Item] = []

    def visit(item: Item, depth: int) -> None:
        if depth > _MAX_REPEAT_DEPTH:
            raise InvalidViewError(hints=[f"{location}.repeat: nested deeper than {_MAX_REPEAT_DEPTH} levels"])
        for path in paths:
            for child in _run(path, (item,), variables, f"{location}.repeat"):
                found.append(child)
                visit(child, depth + 1)

    visit(start, 0)
    return found


def _columns(select: Select, focus: Item | None, variables: Variables) -> Row:
    row: Row = {}
    env = Env(variables, () if focus is None else (focus,))
    for column in select.columns:
        try:
            items = column.path.evaluate_in(env)
        except InvalidViewError as exc:
            raise exc.at(f"{column.location}.path") from None
        if column.collection:
            row[column.name] = [to_json(item.value) for item in items]
        elif len(items) > 1:
            raise InvalidViewError(
                detail="column yields several values",
                hints=[f"{column.location}: several values; set collection: true"],
            )
        else:
            row[column.name] = to_json(items[0].value) if items else None
    return row


def _foci(select: Select, focus: Item | None, variables: Variables) -> list[Item | None] | None:
    """The foci a select iterates over: None when it does not iterate, [None] for a null row."""
    if select.for_each is None and not select.repeat:
        return None
    if focus is None:
        return [None]
    if select.for_each is not None:
        where = f"{select.location}.{'forEachOrNull' if select.or_null else 'forEach'}"
        items: list[Item | None] = list(_run(select.for_each, (focus,), variables, where))
        if not items and select.or_null:
            return [None]
        return items
    return list(_repeat(select.repeat, focus, variables, select.location))


def _rows(select: Select, focus: Item | None, variables: Variables) -> list[Row]:
    foci = _foci(select, focus, variables)
    iterating = foci is not None
    rows: list[Row] = []
    for index, item in enumerate(foci if foci is not None else [focus]):
        scope = {**variables, "rowIndex": (Item(index, "integer"),)} if iterating else variables
        parts: list[list[Row]] = [[_columns(select, item, scope)]]
        parts += [_rows(child, item, scope) for child in select.selects]
        if select.union_all:
            parts.append([row for branch in select.union_all for row in _rows(branch, item, scope)])
        for combination in product(*parts):
            merged: Row = {}
            for part in combination:
                merged.update(part)
            rows.append(merged)
    return rows


def _passes(view: ViewDefinition, root: Item, variables: Variables) -> bool:
    for clause in view.where:
        result = _run(clause.path, (root,), variables, f"{clause.location}.path")
        if not result:
            return False
        if len(result) > 1 or not isinstance(result[0].value, bool):
            raise InvalidViewError(
                detail="where path is not boolean", hints=[f"{clause.location}.path: must evaluate to a boolean"]
            )
        if result[0].value is not True:
            return False
    return True


def evaluate_resource(view: ViewDefinition, resource: Mapping[str, Any]) -> list[Row]:
    """The rows one resource yields (none for a resource of another type), columns in view order."""
    if resource.get("resourceType") != view.resource:
        return []
    root = wrap(resource, view.resource)
    variables: Variables = {name: (item,) for name, item in view.constants}
    variables.update(resource=(root,), rootResource=(root,), context=(root,), rowIndex=(Item(0, "integer"),))
    if not _passes(view, root, variables):
        return []
    parts = [_rows(select, root, variables) for select in view.select]
    names = view.column_names
    rows: list[Row] = []
    for combination in product(*parts):
        merged: Row = {}
        for part in combination:
            merged.update(part)
        rows.append({name: merged.get(name) for name in names})
    return rows


def evaluate_view(view: ViewDefinition | Mapping[str, Any], resources: Iterable[Mapping[str, Any]]) -> Iterator[Row]:
    """Every row the view yields over ``resources``; a raw view is validated first."""
    definition = view if isinstance(view, ViewDefinition) else parse_view(view)
    for resource in resources:
        yield from evaluate_resource(definition, resource)
