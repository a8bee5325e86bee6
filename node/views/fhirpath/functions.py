"""The FHIRPath functions a view may call: the SQL-on-FHIR v2 required set and common helpers.

Required by the specification: ``where``, ``exists``, ``empty``, ``extension``, ``join``, ``ofType``,
``first``, ``lowBoundary``/``highBoundary``, ``not``, ``getResourceKey``, ``getReferenceKey``. Also
here because analysts reach for them: ``select``, ``all``, ``count``, ``last``, ``tail``, ``skip``,
``take``, ``single``, ``distinct``, ``iif``, ``is``/``as``, ``union``/``combine``, ``hasValue``, the
``allTrue`` family, string helpers and ``toString``/``toInteger``/``toDecimal``. Any other name is
rejected when the path is compiled, so a view never fails late on a typo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from node.views.fhirpath.ast import Node, TypeSpecifier
from node.views.fhirpath.boundaries import boundary
from node.views.fhirpath.context import Collection, Env, Evaluate, single, to_boolean
from node.views.fhirpath.errors import FhirPathEvaluationError
from node.views.fhirpath.types import is_number, matches_type
from node.views.fhirpath.values import Item, equals

__all__ = ["FUNCTIONS", "FunctionSpec", "reference_key"]

Args = tuple[Node | TypeSpecifier, ...]
Impl = Callable[[Collection, Args, Env, Evaluate], Collection]


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A function's arity and implementation."""

    min_args: int
    max_args: int
    impl: Impl


def _bool(value: bool) -> Collection:
    return [Item(value, "boolean")]


def _expression(node: Node | TypeSpecifier) -> Node:
    if isinstance(node, TypeSpecifier):  # the parser gives type specifiers to type functions only
        raise FhirPathEvaluationError("a type where an expression is expected")
    return node


def _arg(args: Args, i: int, env: Env, ev: Evaluate) -> Collection:
    """A non-lambda argument, evaluated against ``$this`` of the calling expression."""
    return ev(_expression(args[i]), env.this, env)


def _lambda(node: Node | TypeSpecifier, item: Item, index: int, env: Env, ev: Evaluate) -> Collection:
    return ev(_expression(node), (item,), env.iteration(item, index))


def _type_arg(args: Args, i: int) -> str:
    node = args[i]
    if not isinstance(node, TypeSpecifier):  # the parser reads type arguments as specifiers
        raise FhirPathEvaluationError("an expression where a type is expected")
    return node.name


def _where(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    return [item for i, item in enumerate(items) if to_boolean(_lambda(args[0], item, i, env, ev), "where()") is True]


def _exists(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    return _bool(bool(_where(items, args, env, ev) if args else items))


def _all(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    return _bool(all(to_boolean(_lambda(args[0], item, i, env, ev), "all()") is True for i, item in enumerate(items)))


def _select(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    return [out for i, item in enumerate(items) for out in _lambda(args[0], item, i, env, ev)]


def _repeat(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    found: Collection = []
    seen: set[int] = set()
    pending = list(items)
    while pending:
        item = pending.pop(0)
        for child in _lambda(args[0], item, 0, env, ev):
            key = id(child.value)
            if key not in seen:
                seen.add(key)
                found.append(child)
                pending.append(child)
    return found


def _of_type(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    wanted = _type_arg(args, 0)
    return [item for item in items if matches_type(item.value, item.type, wanted)]


def _is(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    item = single(items, "is()")
    return [] if item is None else _bool(matches_type(item.value, item.type, _type_arg(args, 0)))


def _as(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    item = single(items, "as()")
    return [item] if item is not None and matches_type(item.value, item.type, _type_arg(args, 0)) else []


def _not(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    value = to_boolean(items, "not()")
    return [] if value is None else _bool(not value)


def _count(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    return [Item(len(items), "integer")]


def _distinct_items(items: Collection) -> Collection:
    out: Collection = []
    for item in items:
        if not any(equals(item, kept) is True for kept in out):
            out.append(item)
    return out


def _int_arg(args: Args, i: int, env: Env, ev: Evaluate, what: str) -> int:
    item = single(_arg(args, i, env, ev), what)
    if item is None or not is_number(item.value):
        raise FhirPathEvaluationError(f"{what} expects an integer argument")
    return int(item.value)


def _iif(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    if to_boolean(_arg(args, 0, env, ev), "iif()") is True:
        return _arg(args, 1, env, ev)
    return _arg(args, 2, env, ev) if len(args) > 2 else []


def _strings(items: Collection, what: str) -> list[str]:
    out = []
    for item in items:
        if not isinstance(item.value, str):
            raise FhirPathEvaluationError(f"{what} expects strings")
        out.append(item.value)
    return out


def _join(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    separator = ""
    if args:
        sep_item = single(_arg(args, 0, env, ev), "join()")
        separator = sep_item.value if sep_item is not None and isinstance(sep_item.value, str) else ""
    return [Item(separator.join(_strings(items, "join()")), "string")]


def _string_fn(name: str, op: Callable[[str, list[object]], object], nargs: int) -> FunctionSpec:
    def impl(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
        item = single(items, f"{name}()")
        if item is None or not isinstance(item.value, str):
            return []
        values: list[object] = []
        for i in range(len(args)):
            arg = single(_arg(args, i, env, ev), f"{name}()")
            if arg is None:
                return []
            values.append(arg.value)
        result = op(item.value, values)
        if result is None:
            return []
        return [
            Item(result, "boolean" if isinstance(result, bool) else "integer" if isinstance(result, int) else "string")
        ]

    return FunctionSpec(nargs, nargs if name != "substring" else 2, impl)


def _substring(text: str, args: list[object]) -> object:
    start = args[0]
    if not isinstance(start, int) or start < 0 or start >= len(text):
        return None
    length = args[1] if len(args) > 1 else None
    return text[start:] if not isinstance(length, int) else text[start : start + max(length, 0)]


def _to_string(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    item = single(items, "toString()")
    if item is None or isinstance(item.value, dict):
        return []
    value = item.value
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return [Item(text, "string")]


def _to_integer(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    item = single(items, "toInteger()")
    if item is None:
        return []
    value = item.value
    if isinstance(value, bool):
        return [Item(int(value), "integer")]
    if isinstance(value, int):
        return [Item(value, "integer")]
    if isinstance(value, str) and value.lstrip("+-").isdigit():
        return [Item(int(value), "integer")]
    return []


def _to_decimal(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    item = single(items, "toDecimal()")
    if item is None:
        return []
    value = item.value
    if is_number(value):
        return [Item(Decimal(value), "decimal")]
    if isinstance(value, bool):
        return [Item(Decimal(int(value)), "decimal")]
    if isinstance(value, str):
        try:
            return [Item(Decimal(value), "decimal")]
        except InvalidOperation:
            return []
    return []


def _extension(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    url_item = single(_arg(args, 0, env, ev), "extension()")
    if url_item is None:
        return []
    out: Collection = []
    for item in items:
        if isinstance(item.value, dict):
            for ext in item.value.get("extension") or ():
                if isinstance(ext, dict) and ext.get("url") == url_item.value:
                    out.append(Item(ext, "Extension"))
    return out


def _has_value(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    return _bool(len(items) == 1 and not isinstance(items[0].value, dict))


def _resource_key(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    out: Collection = []
    for item in items:
        value = item.value
        if isinstance(value, dict) and isinstance(value.get("resourceType"), str) and isinstance(value.get("id"), str):
            out.append(Item(value["id"], "string"))
    return out


def reference_key(reference: str, wanted: str | None) -> str | None:
    """The key a reference points at: the id of ``Type/id`` (relative, absolute or versioned)."""
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or not parts[-1] or not parts[-2][:1].isupper() or "#" in reference:
        return None
    if wanted is not None and parts[-2] != wanted:
        return None
    return parts[-1]


def _reference_key(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    wanted = _type_arg(args, 0) if args else None
    out: Collection = []
    for item in items:
        value = item.value
        reference = value.get("reference") if isinstance(value, dict) else None
        key = reference_key(reference, wanted) if isinstance(reference, str) else None
        if key is not None:
            out.append(Item(key, "string"))
    return out


def _boundary_fn(high: bool) -> Impl:
    def impl(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
        precision = _int_arg(args, 0, env, ev, "boundary") if args else None
        out: Collection = []
        for item in items:
            result = boundary(item, precision, high=high)
            if result is not None:
                out.append(result)
        return out

    return impl


def _truth(mode: str) -> Impl:
    def impl(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
        values = [item.value for item in items]
        if any(not isinstance(v, bool) for v in values):
            raise FhirPathEvaluationError(f"{mode}() expects booleans")
        checks = {
            "allTrue": all(v is True for v in values),
            "anyTrue": any(v is True for v in values),
            "allFalse": all(v is False for v in values),
            "anyFalse": any(v is False for v in values),
        }
        return _bool(checks[mode])

    return impl


def _union(items: Collection, args: Args, env: Env, ev: Evaluate) -> Collection:
    return _distinct_items(items + _arg(args, 0, env, ev))


FUNCTIONS: dict[str, FunctionSpec] = {
    "empty": FunctionSpec(0, 0, lambda items, args, env, ev: _bool(not items)),
    "exists": FunctionSpec(0, 1, _exists),
    "all": FunctionSpec(1, 1, _all),
    "where": FunctionSpec(1, 1, _where),
    "select": FunctionSpec(1, 1, _select),
    "repeat": FunctionSpec(1, 1, _repeat),
    "ofType": FunctionSpec(1, 1, _of_type),
    "is": FunctionSpec(1, 1, _is),
    "as": FunctionSpec(1, 1, _as),
    "first": FunctionSpec(0, 0, lambda items, args, env, ev: items[:1]),
    "last": FunctionSpec(0, 0, lambda items, args, env, ev: items[-1:]),
    "tail": FunctionSpec(0, 0, lambda items, args, env, ev: items[1:]),
    "skip": FunctionSpec(1, 1, lambda items, args, env, ev: items[max(_int_arg(args, 0, env, ev, "skip()"), 0) :]),
    "take": FunctionSpec(1, 1, lambda items, args, env, ev: items[: max(_int_arg(args, 0, env, ev, "take()"), 0)]),
    "single": FunctionSpec(0, 0, lambda items, args, env, ev: items if single(items, "single()") else []),
    "count": FunctionSpec(0, 0, _count),
    "distinct": FunctionSpec(0, 0, lambda items, args, env, ev: _distinct_items(items)),
    "isDistinct": FunctionSpec(0, 0, lambda items, args, env, ev: _bool(len(_distinct_items(items)) == len(items))),
    "not": FunctionSpec(0, 0, _not),
    "iif": FunctionSpec(2, 3, _iif),
    "join": FunctionSpec(0, 1, _join),
    "union": FunctionSpec(1, 1, _union),
    "combine": FunctionSpec(1, 1, lambda items, args, env, ev: items + _arg(args, 0, env, ev)),
    "extension": FunctionSpec(1, 1, _extension),
    "hasValue": FunctionSpec(0, 0, _has_value),
    "getResourceKey": FunctionSpec(0, 0, _resource_key),
    "getReferenceKey": FunctionSpec(0, 1, _reference_key),
    "lowBoundary": FunctionSpec(0, 1, _boundary_fn(high=False)),
    "highBoundary": FunctionSpec(0, 1, _boundary_fn(high=True)),
    "allTrue": FunctionSpec(0, 0, _truth("allTrue")),
    "anyTrue": FunctionSpec(0, 0, _truth("anyTrue")),
    "allFalse": FunctionSpec(0, 0, _truth("allFalse")),
    "anyFalse": FunctionSpec(0, 0, _truth("anyFalse")),
    "toString": FunctionSpec(0, 0, _to_string),
    "toInteger": FunctionSpec(0, 0, _to_integer),
    "toDecimal": FunctionSpec(0, 0, _to_decimal),
    "trace": FunctionSpec(1, 2, lambda items, args, env, ev: items),
    "startsWith": _string_fn("startsWith", lambda s, a: s.startswith(a[0]) if isinstance(a[0], str) else None, 1),
    "endsWith": _string_fn("endsWith", lambda s, a: s.endswith(a[0]) if isinstance(a[0], str) else None, 1),
    "contains": _string_fn("contains", lambda s, a: a[0] in s if isinstance(a[0], str) else None, 1),
    "upper": _string_fn("upper", lambda s, a: s.upper(), 0),
    "lower": _string_fn("lower", lambda s, a: s.lower(), 0),
    "length": _string_fn("length", lambda s, a: len(s), 0),
    "substring": _string_fn("substring", _substring, 1),
}
