"""canonical_json: RFC 8785 (JCS) canonical JSON, the bytes medfed signs."""

from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from enum import IntEnum, StrEnum
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.crypto import canonical_json
from common.crypto.canonical import MAX_DEPTH
from common.errors import ErrorCode, InputError

# RFC 8785 Appendix B: IEEE-754 doubles (hex) and their canonical JSON text.
_APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]

# RFC 8785 §3.2.2: the example input, and §3.2.4: its canonical form as UTF-8 bytes.
_RFC_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
_RFC_OUTPUT_HEX = """
7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d
"""


def test_rfc8785_example_is_reproduced_byte_for_byte() -> None:
    """The example of RFC 8785 §3.2.2 canonicalises to exactly the bytes of §3.2.4."""
    assert canonical_json(json.loads(_RFC_INPUT)) == bytes.fromhex(_RFC_OUTPUT_HEX)


@pytest.mark.parametrize(("ieee", "expected"), _APPENDIX_B)
def test_numbers_follow_rfc8785_appendix_b(ieee: str, expected: str) -> None:
    """Each double of RFC 8785 Appendix B is written exactly as the RFC lists it."""
    (value,) = struct.unpack(">d", bytes.fromhex(ieee))
    assert canonical_json(value) == expected.encode("ascii")


def test_keys_are_sorted_and_whitespace_is_absent() -> None:
    """Object members come out sorted by key at every level, with no whitespace, whatever the input order."""
    value = {"b": 1, "a": {"d": [3, 2, 1], "c": None}, "aa": True}
    assert canonical_json(value) == b'{"a":{"c":null,"d":[3,2,1]},"aa":true,"b":1}'
    assert canonical_json(OrderedDict(reversed(list(value.items())))) == canonical_json(value)


def test_keys_sort_by_utf16_code_units() -> None:
    """Keys sort as UTF-16 code units (RFC 8785 §3.2.3): an emoji key sorts before U+FB33, unlike code points."""
    value = {"\ufb33": 1, "\U0001f600": 2, "\u20ac": 3, "\r": 4, "1": 5, "\u0080": 6, "\u00f6": 7}
    assert list(json.loads(canonical_json(value))) == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_unicode_is_written_as_utf8_not_escaped() -> None:
    """Non-ASCII text is plain UTF-8; only quote, backslash and U+0000..U+001F are escaped (short forms first)."""
    assert canonical_json("Zoë Müller 张伟 😀") == '"Zoë Müller 张伟 😀"'.encode()
    assert (
        canonical_json('"\\/\b\f\n\r\t\x00\x1f\x7f\u2028') == b'"\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\x7f\xe2\x80\xa8"'
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1, {"x": math.nan}]])
def test_nan_and_infinity_are_refused(value: object) -> None:
    """NaN and ±infinity have no JSON form: InputError(INVALID_REQUEST)."""
    with pytest.raises(InputError) as caught:
        canonical_json(value)
    assert caught.value.code is ErrorCode.INVALID_REQUEST


def test_refusal_names_the_location_not_the_value() -> None:
    """The error's detail and hint give the path to the offending value, never the data around it."""
    with pytest.raises(InputError) as caught:
        canonical_json({"patient": "Zoë Müller", "rounds": [1, 2, math.inf]})
    assert "$.rounds[2]" in caught.value.detail
    assert caught.value.hints == (caught.value.detail,)
    assert "Zo" not in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [{1: "x"}, {None: 1}, {("a",): 1}, b"bytes", {1, 2}, object(), "\ud800", {"\udfff": 1}],
    ids=["int-key", "none-key", "tuple-key", "bytes", "set", "object", "lone-surrogate", "surrogate-key"],
)
def test_values_without_a_json_form_are_refused(value: object) -> None:
    """Non-string keys, bytes, sets, arbitrary objects and lone surrogates raise InputError."""
    with pytest.raises(InputError):
        canonical_json(value)


def test_integers_are_written_exactly() -> None:
    """Integers are written digit for digit, also beyond 2**53 (a documented difference from JCS)."""
    assert canonical_json([0, -1, 2**53, 10**30]) == b"[0,-1,9007199254740992,1000000000000000000000000000000]"


def test_integral_floats_and_negative_zero() -> None:
    """1.0 is written as 1 and -0.0 as 0, as ECMAScript does."""
    assert canonical_json([1.0, -0.0, 100.0, 1e21, 1e-7]) == b"[1,0,100,1e+21,1e-7]"


def test_literals_tuples_and_enums() -> None:
    """true/false/null are JSON literals, tuples are arrays, and str/int enums are written as their values."""

    class Colour(StrEnum):
        RED = "red"

    class Level(IntEnum):
        HIGH = 3

    assert canonical_json((True, False, None, Colour.RED, Level.HIGH)) == b'[true,false,null,"red",3]'


def test_nesting_beyond_the_limit_is_refused() -> None:
    """Arrays nested deeper than MAX_DEPTH raise InputError instead of exhausting the stack."""
    ok: object = []
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    assert canonical_json(ok) == b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    with pytest.raises(InputError):
        canonical_json([ok])


_JSON_SCALARS = st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | st.text()
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(_JSON, st.randoms(use_true_random=False))
def test_canonical_json_is_independent_of_key_order(value: object, random: Random) -> None:
    """Rebuilding every object with its keys in another order gives the same bytes."""

    def shuffled(item: object) -> object:
        if isinstance(item, dict):
            keys = list(item)
            random.shuffle(keys)
            return {key: shuffled(item[key]) for key in keys}
        if isinstance(item, list):
            return [shuffled(child) for child in item]
        return item

    assert canonical_json(shuffled(value)) == canonical_json(value)


@given(_JSON)
def test_canonical_json_reads_back_and_is_a_fixed_point(value: object) -> None:
    """The output parses back to the same value, and canonicalising that again gives the same bytes."""
    output = canonical_json(value)
    assert json.loads(output) == value
    assert canonical_json(json.loads(output)) == output


@given(
    st.recursive(
        _JSON_SCALARS,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(
                st.text(st.characters(max_codepoint=0xFFFF, codec="utf-8"), max_size=8), children, max_size=5
            )
        ),
        max_leaves=30,
    )
)
def test_canonical_json_agrees_with_the_json_module_without_floats(value: object) -> None:
    """Without floats and astral-plane keys, the output equals json.dumps with sorted keys and no spaces."""
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert canonical_json(value) == expected


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_read_back_exactly(number: float) -> None:
    """Every finite double is written so that it parses back to the same double."""
    assert float(canonical_json(number)) == number
