"""National identifiers: China's 18-digit resident ID number, checked; any other id, normalised.

A national identifier is the strongest single fact a record can hold, and a mistyped one is the most
dangerous: it can be another person's valid number. So an identifier whose check digit fails is dropped
(the record still links on its other fields) rather than hashed, and placeholders that clerks type when
the number is unknown (``000000000``, one digit repeated) are dropped as well.

China's resident identity card number (GB 11643-1999): 6 digits of region, 8 of birth date
(``YYYYMMDD``), 3 of sequence (odd for men, even for women) and a check character computed with
ISO 7064 MOD 11-2 over the first 17 (``X`` stands for 10). Input methods often produce full-width
digits, which NFKC folds; the 15-digit first-generation numbers are widened to 18 (century ``19``
inserted, check character computed).

Every normalised identifier carries its scheme (``cn:`` or ``id:``), so a Chinese resident number and
some other country's identifier that happen to share digits never produce the same token.
"""

from __future__ import annotations

import re
import unicodedata

from common.linkage.normalise import PartialDate, parse_date

__all__ = [
    "CN_RESIDENT_ID_SYSTEMS",
    "is_valid_resident_id",
    "normalise_national_id",
    "normalise_resident_id",
    "resident_id_birth_date",
    "resident_id_check_character",
    "resident_id_sex",
]

#: Identifier systems that name China's resident identity card number (the HL7 China OID and the
#: ``NNCHN`` identifier type are recognised by :mod:`common.linkage.demographics`).
CN_RESIDENT_ID_SYSTEMS = frozenset({"urn:oid:2.16.156.10011.1.3", "urn:medfed:id:cn-resident"})

_WEIGHTS = tuple(pow(2, 17 - position, 11) for position in range(17))
_CHECK_CHARACTERS = "10X98765432"
_SHAPE_18 = re.compile(r"^[1-9]\d{16}[\dX]$")
_SHAPE_15 = re.compile(r"^[1-9]\d{14}$")
_SEPARATORS = re.compile(r"[\s\-./_]+")
_MIN_GENERIC_LENGTH = 5


def _compact(text: str) -> str:
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper()


def resident_id_check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character (``0``-``9`` or ``X``) of 17 digits."""
    if len(first17) != 17 or not first17.isdigit() or not first17.isascii():
        raise ValueError("the check character is defined for exactly 17 ASCII digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARACTERS[total % 11]


def normalise_resident_id(text: str | None) -> str | None:
    """An 18-character resident ID number with a valid check character and birth date, or ``None``.

    Spaces, hyphens and full-width forms are removed; a lower-case ``x`` is upper-cased; a 15-digit
    first-generation number is widened to 18.
    """
    if not text:
        return None
    compact = _compact(text)
    if _SHAPE_15.match(compact):
        widened = compact[:6] + "19" + compact[6:]
        compact = widened + resident_id_check_character(widened)
    if not _SHAPE_18.match(compact):
        return None
    if resident_id_check_character(compact[:17]) != compact[17]:
        return None
    birth = parse_date(compact[6:14])
    if birth is None or not birth.complete:
        return None
    return compact


def is_valid_resident_id(text: str | None) -> bool:
    """Whether ``text`` is a resident ID number with a valid check character and birth date."""
    return normalise_resident_id(text) is not None


def resident_id_birth_date(resident_id: str) -> PartialDate | None:
    """The birth date written in a valid resident ID number."""
    normalised = normalise_resident_id(resident_id)
    return parse_date(normalised[6:14]) if normalised else None


def resident_id_sex(resident_id: str) -> str | None:
    """``"m"`` or ``"f"`` from the sequence digit of a valid resident ID number (odd is male)."""
    normalised = normalise_resident_id(resident_id)
    if normalised is None:
        return None
    return "m" if int(normalised[16]) % 2 else "f"


def _looks_like_resident_id(compact: str) -> bool:
    return bool(_SHAPE_18.match(compact))


def normalise_national_id(text: str | None, *, chinese: bool = False) -> str | None:
    """A scheme-qualified identifier (``cn:…`` or ``id:…``) or ``None`` for a missing or invalid one.

    ``chinese=True`` says the record calls it a Chinese resident ID number: it must then pass the
    check. Without it, an 18-character value shaped like one is checked as one too (a failed check is
    a mistyped number, dropped); anything else is kept as letters and digits, upper case, when it has
    at least five of them and is not one character repeated.
    """
    if not text:
        return None
    compact = _compact(text)
    if chinese or _looks_like_resident_id(compact):
        resident = normalise_resident_id(compact)
        return f"cn:{resident}" if resident else None
    generic = "".join(ch for ch in compact if ch.isalnum())
    if len(generic) < _MIN_GENERIC_LENGTH or len(set(generic)) == 1:
        return None
    return f"id:{generic}"
