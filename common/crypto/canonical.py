"""Canonical JSON: one byte string per JSON value, so a signature over it can be checked anywhere.

A signed job spec, an enrolment record or an audit entry is signed over ``canonical_json(value)``. Two
programs that hold the same value must produce the same bytes, whatever the key order, whitespace or
escaping their JSON library chose. The rules are those of RFC 8785, the JSON Canonicalization Scheme
(JCS), so a verifier in another language can use any JCS library:

- objects: members sorted by their keys compared as UTF-16 code units (RFC 8785 §3.2.3; this differs
  from code-point order only for keys with characters above U+FFFF), no whitespace anywhere;
- strings: UTF-8; only ``"``, ``\\`` and the control characters U+0000..U+001F are escaped, the five
  with short forms as ``\\b \\t \\n \\f \\r``, the rest as ``\\u00xx`` in lower case; everything else,
  including non-ASCII, is written as itself. Lone surrogates are not Unicode and are refused;
- ``true``, ``false``, ``null``;
- numbers as ECMAScript's ``Number.prototype.toString`` writes them (RFC 8785 §3.2.2.3): ``1.0`` is
  ``1``, ``1e21`` is ``1e+21``, ``1e-7`` is ``1e-7``, ``-0.0`` is ``0``. NaN and ±Infinity have no
  JSON form and are refused.

One deliberate difference: Python integers are written exactly, digit for digit. JCS treats every number
as an IEEE-754 double, so for integers beyond ±2**53 a JCS library would round them (and write
``1e+30`` for ``10**30``). medfed's signed documents carry counts, sizes and times, all far below 2**53;
anyone who signs larger integers must make sure every verifier is this function.

Accepted Python types: ``None``, ``bool``, ``int``, ``float``, ``str``, ``list``/``tuple`` (arrays) and
mappings with ``str`` keys (objects). Anything else (bytes, sets, dates, non-string keys), NaN, infinity,
lone surrogates and nesting deeper than :data:`MAX_DEPTH` raise InputError(INVALID_REQUEST) whose
detail and hint give the location (``$.spec.rounds[2]``), never the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal

from common.errors import ErrorCode, InputError

__all__ = ["MAX_DEPTH", "canonical_json"]

#: Deepest nesting of arrays and objects accepted; medfed's signed documents are a few levels deep.
MAX_DEPTH = 128

_ESCAPES: dict[int, str] = {code: f"\\u{code:04x}" for code in range(0x20)}
_ESCAPES.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"})
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})


def canonical_json(value: object) -> bytes:
    """The RFC 8785 (JCS) canonical UTF-8 JSON of ``value``; see the module docstring for the rules."""
    parts: list[str] = []
    _write(value, parts, "$", 0)
    return "".join(parts).encode("utf-8")


def _refuse(location: str, problem: str) -> InputError:
    return InputError(ErrorCode.INVALID_REQUEST, detail=f"{location}: {problem}", hints=(f"{location}: {problem}",))


def _write(value: object, parts: list[str], location: str, depth: int) -> None:
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        # int.__repr__, not str(): an IntEnum member must be written as its number.
        parts.append(int.__repr__(value))
    elif isinstance(value, float):
        parts.append(_number(float(value), location))
    elif isinstance(value, str):
        parts.append(_string(value, location))
    elif isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            raise _refuse(location, f"nested deeper than {MAX_DEPTH} levels")
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _write(item, parts, f"{location}[{index}]", depth + 1)
        parts.append("]")
    elif isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            raise _refuse(location, f"nested deeper than {MAX_DEPTH} levels")
        for key in value:
            if not isinstance(key, str):
                raise _refuse(location, f"object key of type {type(key).__name__}; keys must be strings")
        parts.append("{")
        for index, key in enumerate(sorted(value, key=_utf16_order)):
            if index:
                parts.append(",")
            member = f"{location}.{key}"
            parts.append(_string(key, member))
            parts.append(":")
            _write(value[key], parts, member, depth + 1)
        parts.append("}")
    else:
        raise _refuse(location, f"{type(value).__name__} has no JSON form")


def _utf16_order(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as the sequence of UTF-16 code units does.
    return key.encode("utf-16-be", "surrogatepass")


def _string(text: str, location: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(location, "string holds a lone surrogate, which is not Unicode") from None
    return '"' + str.translate(text, _ESCAPES) + '"'


def _number(number: float, location: str) -> str:
    """ECMAScript Number::toString for a finite double (ECMA-262 §6.1.6.1.20, as RFC 8785 requires)."""
    if not math.isfinite(number):
        raise _refuse(location, "NaN and infinity have no JSON form")
    if number == 0:
        return "0"  # also for -0.0
    sign = "-" if number < 0 else ""
    # repr() gives the shortest digit string that reads back as the same double, as ECMAScript requires.
    _, digit_tuple, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    if not isinstance(exponent, int):  # pragma: no cover - only NaN and infinity have a str exponent
        raise _refuse(location, "NaN and infinity have no JSON form")
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = exponent + k  # the value is 0.digits × 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        power = n - 1
        exponent_text = ("+" if power >= 0 else "-") + str(abs(power))
        text = digits + "e" + exponent_text if k == 1 else digits[0] + "." + digits[1:] + "e" + exponent_text
    return sign + text
