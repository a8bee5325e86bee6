"""Evaluation of a FHIRPath tree over JSON resources.

Navigation follows FHIR's JSON: ``name`` yields the value (arrays flattened); a choice element is
reached by its base name (``value`` finds ``valueQuantity`` and types it ``Quantity``); an
identifier that names the focus's resource type (``Patient.name``) yields the resource itself.
Operators follow FHIRPath: empty operands propagate as empty, ``and``/``or``/``xor``/``implies``
use three-valued logic, and an operator that needs one item and gets several is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any

from node.views.fhirpath.ast import Binary, Call, Indexer, Literal, Member, Node, Path, Special, TypeOp, Unary, Variable
from node.views.fhirpath.context import Collection, Env, single, to_boolean
from node.views.fhirpath.errors import FhirPathEvaluationError
from node.views.fhirpath.functions import FUNCTIONS
from node.views.fhirpath.types import choice_type, is_number, matches_type
from node.views.fhirpath.values import Item, compare, equals, equivalent, wrap

__all__ = ["evaluate", "navigate"]


def navigate(items: Sequence[Item], name: str) -> Collection:
    """The children called ``name`` of every item (choice elements typed by their suffix)."""
    out: Collection = []
    size = len(name)
    for item in items:
        value = item.value
        if type(value) is not dict:
            continue
        child = value.get(name)
        child_type: str | None = None
        if child is None:
            # A choice element (``value`` -> ``valueQuantity``), found by prefix and typed by its suffix.
            for key in value:
                if key.startswith(name) and len(key) > size:
                    child_type = choice_type(key[size:])
                    if child_type is not None:
                        child = value[key]
                        break
            if child is None:
                continue
        if type(child) is list:
            out.extend(wrap(element, child_type) for element in child if element is not None)
        else:
            out.append(wrap(child, child_type))
    return out


def _member(focus: Sequence[Item], name: str) -> Collection:
    if name[:1].isupper():
        own = [item for item in focus if isinstance(item.value, dict) and item.value.get("resourceType") == name]
        if own:
            return own
    return navigate(focus, name)


def _logic(op: str, left: bool | None, right: bool | None) -> bool | None:
    if op == "and":
        if left is False or right is False:
            return False
        return None if left is None or right is None else True
    if op == "or":
        if left is True or right is True:
            return True
        return None if left is None or right is None else False
    if op == "xor":
        return None if left is None or right is None else left != right
    # implies
    if left is False:
        return True
    if left is True:
        return right
    return True if right is True else None


def _collection_equals(left: Collection, right: Collection) -> bool | None:
    if not left or not right:
        return None
    if len(left) != len(right):
        return False
    result: bool | None = True
    for a, b in zip(left, right, strict=True):
        same = equals(a, b)
        if same is False:
            return False
        if same is None:
            result = None
    return result


def _arithmetic(op: str, left: Item, right: Item) -> Item | None:
    x, y = left.value, right.value
    if op == "+" and isinstance(x, str) and isinstance(y, str):
        return Item(x + y, "string")
    if not (is_number(x) and is_number(y)):
        raise FhirPathEvaluationError(f"operator '{op}' expects numbers")
    both_int = isinstance(x, int) and isinstance(y, int)
    try:
        if op == "+":
            result: int | Decimal = x + y
        elif op == "-":
            result = x - y
        elif op == "*":
            result = x * y
        elif op == "/":
            result = Decimal(x) / Decimal(y)
            both_int = False
        elif op == "div":
            result = int(Decimal(x) / Decimal(y))
            both_int = True
        else:  # mod
            result = x - y * int(Decimal(x) / Decimal(y))
    except (ZeroDivisionError, DivisionByZero, InvalidOperation):
        return None
    return Item(result, "integer" if both_int else "decimal")


def _binary(node: Binary, focus: Sequence[Item], env: Env) -> Collection:
    op = node.op
    left = evaluate(node.left, focus, env)
    right = evaluate(node.right, focus, env)
    if op in ("and", "or", "xor", "implies"):
        result = _logic(op, to_boolean(left, op), to_boolean(right, op))
        return [] if result is None else [Item(result, "boolean")]
    if op in ("=", "!="):
        same = _collection_equals(left, right)
        return [] if same is None else [Item(same if op == "=" else not same, "boolean")]
    if op in ("~", "!~"):
        alike = len(left) == len(right) and all(equivalent(a, b) for a, b in zip(left, right, strict=True))
        return [Item(alike if op == "~" else not alike, "boolean")]
    if op == "|":
        out: Collection = []
        for item in left + right:
            if not any(equals(item, kept) is True for kept in out):
                out.append(item)
        return out
    if op in ("in", "contains"):
        needle, haystack = (left, right) if op == "in" else (right, left)
        member = single(needle, op)
        return [] if member is None else [Item(any(equals(member, x) is True for x in haystack), "boolean")]
    if op == "&":
        a, b = single(left, op), single(right, op)
        text = (a.value if a is not None else "", b.value if b is not None else "")
        if not all(isinstance(part, str) for part in text):
            raise FhirPathEvaluationError("operator '&' expects strings")
        return [Item(f"{text[0]}{text[1]}", "string")]
    a, b = single(left, op), single(right, op)
    if a is None or b is None:
        return []
    if op in ("<", ">", "<=", ">="):
        order = compare(a, b)
        if order is None:
            return []
        outcome = {"<": order < 0, ">": order > 0, "<=": order <= 0, ">=": order >= 0}[op]
        return [Item(outcome, "boolean")]
    result_item = _arithmetic(op, a, b)
    return [] if result_item is None else [result_item]


def _path(node: Path, focus: Sequence[Item], env: Env) -> Collection:
    return navigate(evaluate(node.target, focus, env), node.name)


def _member_node(node: Member, focus: Sequence[Item], env: Env) -> Collection:
    return _member(focus, node.name)


def _call(node: Call, focus: Sequence[Item], env: Env) -> Collection:
    items = list(focus) if node.target is None else evaluate(node.target, focus, env)
    return FUNCTIONS[node.name].impl(items, node.args, env, evaluate)


def _literal(node: Literal, focus: Sequence[Item], env: Env) -> Collection:
    return list(node.items)


def _variable(node: Variable, focus: Sequence[Item], env: Env) -> Collection:
    if node.name not in env.variables:
        raise FhirPathEvaluationError("undefined variable")
    return list(env.variables[node.name])


def _special(node: Special, focus: Sequence[Item], env: Env) -> Collection:
    if node.name == "this":
        return list(env.this)
    return [] if node.name == "total" or env.index is None else [Item(env.index, "integer")]


def _indexer(node: Indexer, focus: Sequence[Item], env: Env) -> Collection:
    items = evaluate(node.target, focus, env)
    position = single(evaluate(node.index, env.this, env), "indexer")
    if position is None or not is_number(position.value):
        return []
    index = int(position.value)
    return [items[index]] if 0 <= index < len(items) else []


def _unary(node: Unary, focus: Sequence[Item], env: Env) -> Collection:
    items = evaluate(node.operand, focus, env)
    if node.op == "+":
        return items
    item = single(items, "unary '-'")
    if item is None:
        return []
    if not is_number(item.value):
        raise FhirPathEvaluationError("unary '-' expects a number")
    return [Item(-item.value, item.type)]


def _type_op(node: TypeOp, focus: Sequence[Item], env: Env) -> Collection:
    item = single(evaluate(node.operand, focus, env), node.op)
    if item is None:
        return []
    matched = matches_type(item.value, item.type, node.type.name)
    if node.op == "is":
        return [Item(matched, "boolean")]
    return [item] if matched else []


# One handler per node class: a dict lookup instead of a chain of isinstance tests (the hot path).
_HANDLERS: dict[type, Callable[[Any, Sequence[Item], Env], Collection]] = {
    Path: _path,
    Member: _member_node,
    Call: _call,
    Literal: _literal,
    Binary: _binary,
    Variable: _variable,
    Special: _special,
    Indexer: _indexer,
    Unary: _unary,
    TypeOp: _type_op,
}


def evaluate(node: Node, focus: Sequence[Item], env: Env) -> Collection:
    """The collection ``node`` yields for the input ``focus``."""
    return _HANDLERS[type(node)](node, focus, env)
