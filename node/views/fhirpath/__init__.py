"""The FHIRPath subset of SQL-on-FHIR v2, compiled once per expression and evaluated many times.

``compile_path(text)`` parses an expression and checks every function name and arity, so a view
with a typo fails when it is loaded, not on the ten-thousandth resource. The compiled form is cached
by text: the standard views and every forEach of a busy ingest share one tree per distinct path.

Modules: :mod:`.lexer` (tokens), :mod:`.parser` (tree), :mod:`.values` (items, equality, dates),
:mod:`.types` (type names and matching), :mod:`.functions`, :mod:`.boundaries`, :mod:`.evaluator`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from node.views.fhirpath.ast import Binary, Call, Indexer, Node, Path, TypeOp, TypeSpecifier, Unary, Variable
from node.views.fhirpath.context import Collection, Env
from node.views.fhirpath.errors import FhirPathEvaluationError, FhirPathSyntaxError
from node.views.fhirpath.evaluator import evaluate
from node.views.fhirpath.functions import FUNCTIONS
from node.views.fhirpath.parser import parse
from node.views.fhirpath.values import Item, to_json, wrap

__all__ = [
    "Collection",
    "CompiledPath",
    "Env",
    "FhirPathEvaluationError",
    "FhirPathSyntaxError",
    "Item",
    "compile_path",
    "to_json",
    "wrap",
]


def _children(node: Node | TypeSpecifier) -> Sequence[Node | TypeSpecifier]:
    if isinstance(node, Path):
        return (node.target,)
    if isinstance(node, Call):
        return ((node.target,) if node.target is not None else ()) + node.args
    if isinstance(node, Indexer):
        return (node.target, node.index)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, TypeOp):
        return (node.operand,)
    return ()


def _check(node: Node | TypeSpecifier, variables: set[str]) -> None:
    """Reject unknown functions and wrong arities; collect the ``%`` variables used."""
    if isinstance(node, Call):
        spec = FUNCTIONS.get(node.name)
        if spec is None:
            raise FhirPathSyntaxError(f"unsupported function '{node.name}'", node.offset)
        if not spec.min_args <= len(node.args) <= spec.max_args:
            raise FhirPathSyntaxError(f"wrong number of arguments to '{node.name}'", node.offset)
    if isinstance(node, Variable):
        variables.add(node.name)
    for child in _children(node):
        _check(child, variables)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledPath:
    """A parsed, checked expression; ``variables`` are the ``%`` names it reads."""

    text: str
    tree: Node
    variables: frozenset[str]

    def evaluate(self, focus: Sequence[Item], variables: Mapping[str, Sequence[Item]]) -> Collection:
        """The result for the input ``focus`` (``$this`` starts as the focus)."""
        return evaluate(self.tree, focus, Env(variables, focus))

    def evaluate_in(self, env: Env) -> Collection:
        """The result for ``env.this`` as input, in an environment shared by several paths."""
        return evaluate(self.tree, env.this, env)


@functools.lru_cache(maxsize=4096)
def compile_path(text: str) -> CompiledPath:
    """Compile ``text``; raises FhirPathSyntaxError (an InvalidViewError) naming the rule."""
    tree = parse(text)
    variables: set[str] = set()
    _check(tree, variables)
    return CompiledPath(text, tree, frozenset(variables))
