"""What an expression is evaluated against besides its input: variables, ``$this`` and ``$index``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from node.views.fhirpath.ast import Node
from node.views.fhirpath.errors import FhirPathEvaluationError
from node.views.fhirpath.values import Item

__all__ = ["Collection", "Env", "Evaluate", "single", "to_boolean"]

Collection = list[Item]


class Env:
    """The environment: ``%`` variables, the ``$this`` collection and ``$index`` of a lambda.

    A plain slotted class, not a frozen dataclass: one is built per lambda iteration, on the hot path.
    """

    __slots__ = ("index", "this", "variables")

    def __init__(self, variables: Mapping[str, Sequence[Item]], this: Sequence[Item], index: int | None = None) -> None:
        self.variables = variables
        self.this = this
        self.index = index

    def iteration(self, item: Item, index: int) -> Env:
        """The environment of a lambda's body for one input item."""
        return Env(self.variables, (item,), index)


Evaluate = Callable[[Node, Sequence[Item], Env], Collection]


def single(collection: Sequence[Item], what: str) -> Item | None:
    """The only item of ``collection``, None when empty; an error when it has several."""
    if not collection:
        return None
    if len(collection) > 1:
        raise FhirPathEvaluationError(f"{what} expects a single item, got several")
    return collection[0]


def to_boolean(collection: Sequence[Item], what: str) -> bool | None:
    """FHIRPath's singleton evaluation as a Boolean: empty is None, one non-boolean item is true."""
    item = single(collection, what)
    if item is None:
        return None
    return item.value if isinstance(item.value, bool) else True
