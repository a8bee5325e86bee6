"""Parsing and validating a SQL-on-FHIR v2 ViewDefinition into typed, frozen parts.

Every rule of the specification that can be checked without data is checked here, once, so the
evaluator can trust its input: ``resource`` names a FHIR R4 resource type; ``select`` is a non-empty
list; each select has at most one of ``forEach``/``forEachOrNull``/``repeat``; column names match
``^[A-Za-z][A-Za-z0-9_]*$`` and are unique across the view; every ``unionAll`` branch yields the same
column names in the same order; constants have exactly one ``value[x]`` of a primitive type; every
FHIRPath expression parses, calls only supported functions, and reads only defined ``%`` variables.

A broken rule raises :class:`InvalidViewError` whose hint is ``<location>: <rule>`` (``select[0].
column[2].name: must match ^[A-Za-z][A-Za-z0-9_]*$``). Hints never repeat values from the view.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from node.fhir.resource_types import R4_RESOURCE_TYPES
from node.views.errors import InvalidViewError
from node.views.fhirpath import CompiledPath, Item, compile_path, wrap
from node.views.fhirpath.types import INTEGER_TYPES, PRIMITIVE_TYPES, canonical_type

__all__ = ["BUILTIN_VARIABLES", "Column", "Select", "Tag", "ViewDefinition", "Where", "parse_view"]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NAME_RULE = "must match ^[A-Za-z][A-Za-z0-9_]*$"
# Variables every expression may read besides the view's constants.
BUILTIN_VARIABLES = frozenset(("rowIndex", "resource", "rootResource", "context", "ucum", "sct", "loinc"))
_ELEMENT_KEYS = frozenset(("id", "extension", "modifierExtension"))
_VIEW_KEYS = _ELEMENT_KEYS | {
    "resourceType", "meta", "implicitRules", "language", "text", "contained", "url", "identifier", "version",
    "versionAlgorithmString", "versionAlgorithmCoding", "name", "title", "status", "experimental", "date",
    "publisher", "contact", "description", "useContext", "jurisdiction", "purpose", "copyright", "copyrightLabel",
    "resource", "resourceVersion", "profile", "fhirVersion", "constant", "select", "where",
}  # fmt: skip
_SELECT_KEYS = _ELEMENT_KEYS | {"column", "select", "forEach", "forEachOrNull", "repeat", "unionAll"}
_COLUMN_KEYS = _ELEMENT_KEYS | {"name", "path", "description", "collection", "type", "tag"}
_WHERE_KEYS = _ELEMENT_KEYS | {"path", "description"}
_TAG_KEYS = _ELEMENT_KEYS | {"name", "value"}


@dataclass(frozen=True, slots=True)
class Tag:
    """A column tag: a name and a string value (medfed reads ``medfed.bounds``)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Column:
    """One output column."""

    name: str
    path: CompiledPath
    collection: bool
    type: str | None
    description: str | None
    tags: tuple[Tag, ...]
    location: str


@dataclass(frozen=True, slots=True)
class Select:
    """A select: its iteration (if any), columns, nested selects and unionAll branches."""

    columns: tuple[Column, ...]
    selects: tuple[Select, ...]
    union_all: tuple[Select, ...]
    for_each: CompiledPath | None
    or_null: bool  # for_each came from forEachOrNull
    repeat: tuple[CompiledPath, ...]
    location: str
    output: tuple[str, ...]  # every column name this select yields, in order


@dataclass(frozen=True, slots=True)
class Where:
    """A filter on the resource: rows are produced only when every path is true."""

    path: CompiledPath
    location: str


@dataclass(frozen=True, slots=True)
class ViewDefinition:
    """A validated view: ``columns`` lists every output column in output order."""

    name: str | None
    resource: str
    description: str | None
    constants: tuple[tuple[str, Item], ...]
    where: tuple[Where, ...]
    select: tuple[Select, ...]
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """The output column names, in order."""
        return tuple(column.name for column in self.columns)


def _fail(location: str, rule: str) -> InvalidViewError:
    return InvalidViewError(detail=f"invalid view at {location}", hints=[f"{location}: {rule}"])


def _object(raw: object, location: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(location, "must be an object")
    unknown = sorted(key for key in raw if key not in allowed)
    if unknown:
        raise _fail(f"{location}.{unknown[0]}", "not an element of this part of a ViewDefinition")
    return raw


def _list(raw: object, location: str, *, required: bool = False) -> list[Any]:
    if raw is None:
        if required:
            raise _fail(location, "missing")
        return []
    if not isinstance(raw, list):
        raise _fail(location, "must be a list")
    if required and not raw:
        raise _fail(location, "must not be empty")
    return raw


def _string(raw: object, location: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        raise _fail(location, "must be a non-empty string")
    return raw


def _required(raw: object, location: str) -> str:
    text = _string(raw, location)
    if text is None:
        raise _fail(location, "missing")
    return text


class _Compiler:
    """Compiles paths and records which ``%`` variables the view reads (and where)."""

    def __init__(self) -> None:
        self.variables: list[tuple[str, str]] = []

    def path(self, raw: object, location: str) -> CompiledPath:
        text = _required(raw, location)
        try:
            compiled = compile_path(text)
        except InvalidViewError as exc:
            raise exc.at(location) from None
        self.variables += [(name, location) for name in sorted(compiled.variables)]
        return compiled


def _tags(raw: object, location: str) -> tuple[Tag, ...]:
    tags = []
    for i, entry in enumerate(_list(raw, location)):
        where = f"{location}[{i}]"
        tag = _object(entry, where, _TAG_KEYS)
        name = _required(tag.get("name"), f"{where}.name")
        value = tag.get("value")
        if not isinstance(value, str):
            raise _fail(f"{where}.value", "must be a string")
        tags.append(Tag(name, value))
    return tuple(tags)


def _column(raw: object, location: str, compiler: _Compiler) -> Column:
    column = _object(raw, location, _COLUMN_KEYS)
    name = _required(column.get("name"), f"{location}.name")
    if not _NAME.fullmatch(name):
        raise _fail(f"{location}.name", _NAME_RULE)
    collection = column.get("collection", False)
    if not isinstance(collection, bool):
        raise _fail(f"{location}.collection", "must be true or false")
    type_ = _string(column.get("type"), f"{location}.type")
    if type_ is not None and canonical_type(type_) is None and not type_.startswith(("http://", "https://")):
        raise _fail(f"{location}.type", "not a FHIR type")
    return Column(
        name=name,
        path=compiler.path(column.get("path"), f"{location}.path"),
        collection=collection,
        type=type_,
        description=_string(column.get("description"), f"{location}.description"),
        tags=_tags(column.get("tag"), f"{location}.tag"),
        location=location,
    )


def _select(raw: object, location: str, compiler: _Compiler) -> Select:
    select = _object(raw, location, _SELECT_KEYS)
    iterations = [key for key in ("forEach", "forEachOrNull", "repeat") if key in select]
    if len(iterations) > 1:
        raise _fail(location, "forEach, forEachOrNull and repeat exclude each other")
    for_each: CompiledPath | None = None
    repeat: tuple[CompiledPath, ...] = ()
    if iterations and iterations[0] != "repeat":
        for_each = compiler.path(select[iterations[0]], f"{location}.{iterations[0]}")
    elif iterations:
        entries = _list(select["repeat"], f"{location}.repeat", required=True)
        repeat = tuple(compiler.path(entry, f"{location}.repeat[{i}]") for i, entry in enumerate(entries))
    columns = tuple(
        _column(entry, f"{location}.column[{i}]", compiler)
        for i, entry in enumerate(_list(select.get("column"), f"{location}.column"))
    )
    selects = tuple(
        _select(entry, f"{location}.select[{i}]", compiler)
        for i, entry in enumerate(_list(select.get("select"), f"{location}.select"))
    )
    branches = tuple(
        _select(entry, f"{location}.unionAll[{i}]", compiler)
        for i, entry in enumerate(_list(select.get("unionAll"), f"{location}.unionAll"))
    )
    if "unionAll" in select and not branches:
        raise _fail(f"{location}.unionAll", "must not be empty")
    if not (columns or selects or branches):
        raise _fail(location, "a select needs column, select or unionAll")
    for i, branch in enumerate(branches[1:], start=1):
        if branch.output != branches[0].output:
            raise _fail(f"{location}.unionAll[{i}]", "columns differ from the first branch (names and order)")
    output = tuple(c.name for c in columns) + tuple(n for s in selects for n in s.output)
    if branches:
        output += branches[0].output
    return Select(columns, selects, branches, for_each, iterations[:1] == ["forEachOrNull"], repeat, location, output)


def _constant_value(constant: Mapping[str, Any], location: str) -> Item:
    keys = [key for key in constant if key.startswith("value")]
    if len(keys) != 1:
        raise _fail(location, "needs exactly one value[x]")
    key = keys[0]
    suffix = key[len("value") :]
    type_ = suffix[:1].lower() + suffix[1:]
    if type_ not in PRIMITIVE_TYPES:
        raise _fail(f"{location}.{key}", "not a primitive FHIR type")
    value = constant[key]
    if type_ == "boolean":
        ok = isinstance(value, bool)
    elif type_ in INTEGER_TYPES:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_ == "decimal":
        ok = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
        value = Decimal(value) if isinstance(value, int) and not isinstance(value, bool) else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise _fail(f"{location}.{key}", f"not a valid {type_}")
    return wrap(value, type_)


def _constants(raw: object) -> tuple[tuple[str, Item], ...]:
    constants: dict[str, Item] = {}
    for i, entry in enumerate(_list(raw, "constant")):
        location = f"constant[{i}]"
        if not isinstance(entry, dict):
            raise _fail(location, "must be an object")
        name = _required(entry.get("name"), f"{location}.name")
        if not _NAME.fullmatch(name):
            raise _fail(f"{location}.name", _NAME_RULE)
        if name in constants or name in BUILTIN_VARIABLES:
            raise _fail(f"{location}.name", "already defined (or reserved)")
        unknown = [key for key in entry if key not in _ELEMENT_KEYS | {"name"} and not key.startswith("value")]
        if unknown:
            raise _fail(f"{location}.{sorted(unknown)[0]}", "not an element of a constant")
        constants[name] = _constant_value(entry, location)
    return tuple(constants.items())


def _flatten(select: Select) -> list[Column]:
    columns = list(select.columns)
    for child in select.selects:
        columns += _flatten(child)
    if select.union_all:
        columns += _flatten(select.union_all[0])
    return columns


def parse_view(raw: object) -> ViewDefinition:
    """Validate a ViewDefinition (parsed JSON); raises InvalidViewError naming the location and rule."""
    view = _object(raw, "ViewDefinition", _VIEW_KEYS)
    if view.get("resourceType", "ViewDefinition") != "ViewDefinition":
        raise _fail("resourceType", "must be ViewDefinition")
    resource = _required(view.get("resource"), "resource")
    if resource not in R4_RESOURCE_TYPES:
        raise _fail("resource", "not a FHIR R4 resource type")
    name = _string(view.get("name"), "name")
    if name is not None and not _NAME.fullmatch(name):
        raise _fail("name", _NAME_RULE)
    constants = _constants(view.get("constant"))
    compiler = _Compiler()
    where = tuple(
        Where(compiler.path(_object(entry, f"where[{i}]", _WHERE_KEYS).get("path"), f"where[{i}].path"), f"where[{i}]")
        for i, entry in enumerate(_list(view.get("where"), "where"))
    )
    selects = tuple(
        _select(entry, f"select[{i}]", compiler)
        for i, entry in enumerate(_list(view.get("select"), "select", required=True))
    )
    defined = {name for name, _ in constants} | BUILTIN_VARIABLES
    for variable, location in compiler.variables:
        if variable not in defined:
            raise _fail(location, "reads an undefined constant")
    columns = [column for select in selects for column in _flatten(select)]
    seen: set[str] = set()
    for column in columns:
        if column.name in seen:
            raise _fail(f"{column.location}.name", "column name used twice in the view")
        seen.add(column.name)
    return ViewDefinition(
        name=name,
        resource=resource,
        description=_string(view.get("description"), "description"),
        constants=constants,
        where=where,
        select=selects,
        columns=tuple(columns),
    )
