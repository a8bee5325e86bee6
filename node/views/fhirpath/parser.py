"""A precedence-climbing parser from FHIRPath tokens to the tree in :mod:`node.views.fhirpath.ast`.

Operator precedence, loosest first, as the FHIRPath specification lists it: ``implies``; ``or``
``xor``; ``and``; ``in`` ``contains``; ``=`` ``~`` ``!=`` ``!~``; ``<`` ``>`` ``<=`` ``>=``; ``|``;
``is`` ``as``; ``+`` ``-`` ``&``; ``*`` ``/`` ``div`` ``mod``; unary ``+``/``-``; then ``.`` and ``[]``.
"""

from __future__ import annotations

from decimal import Decimal

from node.views.fhirpath.ast import (
    Binary,
    Call,
    Indexer,
    Literal,
    Member,
    Node,
    Path,
    Special,
    TypeOp,
    TypeSpecifier,
    Unary,
    Variable,
)
from node.views.fhirpath.errors import FhirPathSyntaxError
from node.views.fhirpath.lexer import Token, TokenKind, tokenize
from node.views.fhirpath.types import canonical_type
from node.views.fhirpath.values import Item

__all__ = ["parse"]

# Binary operators by precedence level (higher binds tighter).
_BINARY: dict[str, int] = {
    "implies": 1,
    "or": 2,
    "xor": 2,
    "and": 3,
    "in": 4,
    "contains": 4,
    "=": 5,
    "~": 5,
    "!=": 5,
    "!~": 5,
    "<": 6,
    ">": 6,
    "<=": 6,
    ">=": 6,
    "|": 7,
    "is": 8,
    "as": 8,
    "+": 9,
    "-": 9,
    "&": 9,
    "*": 10,
    "/": 10,
    "div": 10,
    "mod": 10,
}
_WORD_OPERATORS = frozenset(("implies", "or", "xor", "and", "in", "contains", "is", "as", "div", "mod"))
_UNARY_PRECEDENCE = 11
# Functions whose argument is a type, not an expression.
TYPE_FUNCTIONS = frozenset(("ofType", "is", "as", "getReferenceKey"))


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at_operator(self, text: str) -> bool:
        return self.current.kind is TokenKind.OPERATOR and self.current.text == text

    def expect_operator(self, text: str) -> None:
        if not self.at_operator(text):
            raise FhirPathSyntaxError(f"expected '{text}'", self.current.offset)
        self.advance()

    def binary_operator(self) -> str | None:
        token = self.current
        if token.kind is TokenKind.OPERATOR and token.text in _BINARY:
            return token.text
        if token.kind is TokenKind.IDENTIFIER and not token.delimited and token.text in _WORD_OPERATORS:
            return token.text
        return None

    def expression(self, min_precedence: int = 1) -> Node:
        left = self.unary()
        while True:
            op = self.binary_operator()
            if op is None or _BINARY[op] < min_precedence:
                return left
            self.advance()
            if op in ("is", "as"):
                left = TypeOp(op, left, self.type_specifier())
                continue
            right = self.expression(_BINARY[op] + 1)
            left = Binary(op, left, right)

    def unary(self) -> Node:
        if self.at_operator("+") or self.at_operator("-"):
            op = self.advance().text
            return Unary(op, self.unary_operand())
        return self.postfix(self.term())

    def unary_operand(self) -> Node:
        # Unary binds tighter than the arithmetic operators but looser than '.' and '[]'.
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.at_operator("."):
                self.advance()
                node = self.invocation(node)
            elif self.at_operator("["):
                self.advance()
                index = self.expression()
                self.expect_operator("]")
                node = Indexer(node, index)
            else:
                return node

    def identifier(self) -> str:
        token = self.current
        if token.kind is not TokenKind.IDENTIFIER:
            raise FhirPathSyntaxError("expected a name", token.offset)
        self.advance()
        return token.text

    def type_specifier(self) -> TypeSpecifier:
        start = self.current.offset
        if self.current.kind is TokenKind.STRING:  # getReferenceKey('Patient') is also seen
            name = self.advance().text
        else:
            if self.current.kind is not TokenKind.IDENTIFIER:
                raise FhirPathSyntaxError("expected a type name", start)
            name = self.identifier()
            while self.at_operator("."):
                self.advance()
                name += "." + self.identifier()
        canonical = canonical_type(name)
        if canonical is None:
            raise FhirPathSyntaxError("unknown type", start)
        return TypeSpecifier(canonical)

    def arguments(self, name: str) -> tuple[Node | TypeSpecifier, ...]:
        self.expect_operator("(")
        args: list[Node | TypeSpecifier] = []
        if not self.at_operator(")"):
            while True:
                args.append(self.type_specifier() if name in TYPE_FUNCTIONS else self.expression())
                if not self.at_operator(","):
                    break
                self.advance()
        self.expect_operator(")")
        return tuple(args)

    def invocation(self, target: Node | None) -> Node:
        token = self.current
        if token.kind is TokenKind.SPECIAL and target is None:
            self.advance()
            return Special(token.text)
        name = self.identifier()
        if self.at_operator("("):
            return Call(target, name, self.arguments(name), token.offset)
        return Member(name) if target is None else Path(target, name)

    def term(self) -> Node:
        token = self.current
        kind = token.kind
        if kind is TokenKind.OPERATOR and token.text == "(":
            self.advance()
            inner = self.expression()
            self.expect_operator(")")
            return inner
        if kind is TokenKind.STRING:
            self.advance()
            return Literal((Item(token.text, "string"),))
        if kind is TokenKind.NUMBER:
            self.advance()
            if self.current.kind is TokenKind.STRING:  # a quantity literal: 4 'mg'
                unit = self.advance().text
                number = Decimal(token.text)
                return Literal((Item({"value": number, "unit": unit, "code": unit}, "Quantity"),))
            if "." in token.text:
                return Literal((Item(Decimal(token.text), "decimal"),))
            return Literal((Item(int(token.text), "integer"),))
        if kind in (TokenKind.DATE, TokenKind.DATETIME, TokenKind.TIME):
            self.advance()
            return Literal((Item(token.text, str(kind)),))
        if kind is TokenKind.VARIABLE:
            self.advance()
            return Variable(token.text)
        if kind is TokenKind.OPERATOR and token.text == "{":
            self.advance()
            self.expect_operator("}")
            return Literal(())
        is_call = self.pos + 1 < len(self.tokens) and self.tokens[self.pos + 1].text == "("
        if kind is TokenKind.IDENTIFIER and not token.delimited and token.text in ("true", "false") and not is_call:
            self.advance()
            return Literal((Item(token.text == "true", "boolean"),))
        if kind in (TokenKind.IDENTIFIER, TokenKind.SPECIAL):
            return self.invocation(None)
        raise FhirPathSyntaxError("expected an expression", token.offset)


def parse(text: str) -> Node:
    """The syntax tree of ``text``; raises FhirPathSyntaxError naming the rule and offset."""
    if not isinstance(text, str) or not text.strip():
        raise FhirPathSyntaxError("empty expression", 0)
    parser = _Parser(text)
    node = parser.expression()
    if parser.current.kind is not TokenKind.END:
        raise FhirPathSyntaxError("unexpected text after the expression", parser.current.offset)
    return node
