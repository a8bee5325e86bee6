"""Tokens of a FHIRPath expression.

The lexer knows the whole FHIRPath lexical grammar that view paths can use: identifiers (plain and
`delimited`), 'strings' with their escapes, numbers, @date/@dateTime/@Ttime literals, %variables,
$this/$index/$total, the operators and both comment styles. A character it cannot place is a
syntax error naming its offset, never the text around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from node.views.fhirpath.errors import FhirPathSyntaxError

__all__ = ["Token", "TokenKind", "tokenize"]


class TokenKind(StrEnum):
    """What a token is; operators and punctuation keep their text in ``Token.text``."""

    IDENTIFIER = "identifier"
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "dateTime"
    TIME = "time"
    VARIABLE = "variable"
    SPECIAL = "special"  # $this, $index, $total
    OPERATOR = "operator"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its (unescaped) text and where it starts."""

    kind: TokenKind
    text: str
    offset: int
    delimited: bool = False  # a `quoted` identifier: never a keyword


_TIME = r"\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_ZONE = r"(?:Z|[+-]\d{2}:\d{2})"
_DATE_OR_DATETIME = re.compile(rf"@(\d{{4}}(?:-\d{{2}}(?:-\d{{2}})?)?)(T(?:{_TIME})?{_ZONE}?)?")
_TIME_LITERAL = re.compile(rf"@T({_TIME})")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)+", re.DOTALL)
_OPERATORS = (
    "<=",
    ">=",
    "!=",
    "!~",
    "=",
    "~",
    "<",
    ">",
    "+",
    "-",
    "*",
    "/",
    "&",
    "|",
    ".",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "r": "\r", "n": "\n", "t": "\t", "f": "\f", "\\": "\\", "/": "/"}


def _quoted(text: str, start: int, quote: str) -> tuple[str, int]:
    """The unescaped content of a quoted string or identifier starting at ``start``, and its end."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == quote:
            return "".join(out), i + 1
        if char == "\\":
            if i + 1 >= len(text):
                break
            code = text[i + 1]
            if code == "u":
                digits = text[i + 2 : i + 6]
                if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise FhirPathSyntaxError("invalid \\u escape", start)
                out.append(chr(int(digits, 16)))
                i += 6
                continue
            if code not in _ESCAPES:
                raise FhirPathSyntaxError("invalid escape sequence", i)
            out.append(_ESCAPES[code])
            i += 2
            continue
        out.append(char)
        i += 1
    raise FhirPathSyntaxError("unterminated quoted text", start)


def _variable(text: str, i: int) -> tuple[Token, int]:
    """A ``%name``, ``%`name``` or ``%'name'`` external constant."""
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if nxt in "`'":
        name, end = _quoted(text, i + 1, nxt)
        return Token(TokenKind.VARIABLE, name, i), end
    match = _IDENTIFIER.match(text, i + 1)
    if match is None:
        raise FhirPathSyntaxError("'%' must be followed by a name", i)
    return Token(TokenKind.VARIABLE, match.group(), i), match.end()


def _temporal(text: str, i: int) -> tuple[Token, int]:
    """A ``@2020-01-01``, ``@2020-01-01T10:00:00Z`` or ``@T10:00`` literal."""
    match = _TIME_LITERAL.match(text, i)
    if match is not None:
        return Token(TokenKind.TIME, match.group(1), i), match.end()
    match = _DATE_OR_DATETIME.match(text, i)
    if match is None:
        raise FhirPathSyntaxError("malformed date or time literal", i)
    date_part, time_part = match.group(1), match.group(2)
    if time_part is None:
        return Token(TokenKind.DATE, date_part, i), match.end()
    # "@2020-01-01T" (a bare T) is a dateTime of date precision.
    rest = time_part[1:]
    return Token(TokenKind.DATETIME, date_part + ("T" + rest if rest else ""), i), match.end()


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with one END token; raises FhirPathSyntaxError."""
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while True:
        space = _SPACE.match(text, i)
        if space is not None:
            i = space.end()
        if i >= n:
            tokens.append(Token(TokenKind.END, "", i))
            return tokens
        char = text[i]
        if char == "'":
            value, i_end = _quoted(text, i, "'")
            tokens.append(Token(TokenKind.STRING, value, i))
        elif char == "`":
            value, i_end = _quoted(text, i, "`")
            tokens.append(Token(TokenKind.IDENTIFIER, value, i, delimited=True))
        elif char == "%":
            token, i_end = _variable(text, i)
            tokens.append(token)
        elif char == "@":
            token, i_end = _temporal(text, i)
            tokens.append(token)
        elif char == "$":
            match = _IDENTIFIER.match(text, i + 1)
            if match is None or match.group() not in ("this", "index", "total"):
                raise FhirPathSyntaxError("unknown $ variable", i)
            tokens.append(Token(TokenKind.SPECIAL, match.group(), i))
            i_end = match.end()
        elif char.isdigit():
            match = _NUMBER.match(text, i)
            if match is None:  # unreachable: a digit always starts a number
                raise FhirPathSyntaxError("unexpected character", i)
            tokens.append(Token(TokenKind.NUMBER, match.group(), i))
            i_end = match.end()
        elif char.isalpha() or char == "_":
            match = _IDENTIFIER.match(text, i)
            if match is None:  # unreachable: a letter always starts an identifier
                raise FhirPathSyntaxError("unexpected character", i)
            tokens.append(Token(TokenKind.IDENTIFIER, match.group(), i))
            i_end = match.end()
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token(TokenKind.OPERATOR, op, i))
                    i_end = i + len(op)
                    break
            else:
                raise FhirPathSyntaxError("unexpected character", i)
        i = i_end
