"""The syntax tree of a FHIRPath expression: small frozen nodes that the evaluator walks."""

from __future__ import annotations

from dataclasses import dataclass

from node.views.fhirpath.values import Item

__all__ = [
    "Binary",
    "Call",
    "Indexer",
    "Literal",
    "Member",
    "Node",
    "Path",
    "Special",
    "TypeOp",
    "TypeSpecifier",
    "Unary",
    "Variable",
]


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal collection: ``{}`` (empty), a string, number, boolean, date, dateTime or time."""

    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Special:
    """``$this``, ``$index`` or ``$total``."""

    name: str


@dataclass(frozen=True, slots=True)
class Variable:
    """``%name``: a view constant, ``%rowIndex``, ``%resource`` and the like."""

    name: str


@dataclass(frozen=True, slots=True)
class Member:
    """An identifier at the start of a term: a child of the focus, or the focus's own resource type."""

    name: str


@dataclass(frozen=True, slots=True)
class Path:
    """``target.name``: the children called ``name`` of every item of ``target``."""

    target: Node
    name: str


@dataclass(frozen=True, slots=True)
class TypeSpecifier:
    """A type name given to ``ofType``, ``is``, ``as`` or ``getReferenceKey`` (namespace stripped)."""

    name: str


@dataclass(frozen=True, slots=True)
class Call:
    """A function call on ``target`` (or on the focus when ``target`` is None)."""

    target: Node | None
    name: str
    args: tuple[Node | TypeSpecifier, ...]
    offset: int = 0  # where the name starts, for error hints


@dataclass(frozen=True, slots=True)
class Indexer:
    """``target[index]``."""

    target: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Unary:
    """Unary ``+`` or ``-``."""

    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    """An infix operator: arithmetic, comparison, equality, union, membership or boolean logic."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class TypeOp:
    """``operand is T`` or ``operand as T``."""

    op: str
    operand: Node
    type: TypeSpecifier


Node = Literal | Special | Variable | Member | Path | Call | Indexer | Unary | Binary | TypeOp
