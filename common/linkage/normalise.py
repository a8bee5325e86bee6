"""Normalisation of demographic fields, so that two hospitals' spellings of one fact give one string.

A linkage token is an exact keyed hash: it matches only if both sides hash the same bytes. Everything
that varies between two correct records of one person and carries no identity (letter case, accents,
full-width forms, traditional or simplified characters, spaces, hyphens and apostrophes in names, the
separator in a date, the space in a postcode) is removed here, once, for both sides. What is left is a
fact about the person, or ``None`` when nothing usable is left.

Choices and why:

- **Unicode NFKC, then case-folding, then accents stripped** (NFKD without combining marks): ``Ｍüller``,
  ``MULLER`` and ``müller`` agree; NFKC also folds the full-width Latin letters and digits of Chinese
  and Japanese input methods (``１２３`` is ``123``, the ideographic space is a space).
- **Chinese names**: traditional characters become simplified (``zhconv``), and the *name key* of a Han
  name is its toneless pinyin (``pypinyin``, ``ü`` written ``u``), so ``張偉``, ``张伟`` and
  ``Zhang Wei`` share a key. The Han characters themselves are kept as a second, stronger form
  (:func:`han_form`), because pinyin merges homophones (``张`` and ``章`` are both ``zhang``).
  pypinyin reads characters as common words; a family name has its own readings for a few characters
  (``单`` is Shan, ``曾`` Zeng, ``区`` Ou as surnames), taken from :data:`SURNAME_READINGS`. ``ü`` is
  folded to ``u`` whichever way it was typed (``Lü``, ``Lv``, ``Lyu`` are all ``lu``).
- **Name keys keep letters only** (any script), so ``Mary-Jane``, ``mary jane`` and ``maryjane`` agree,
  and ``O'Brien`` is ``obrien``. Phonetic codes (:func:`soundex`) and initials are *weaker* forms that
  the token recipe uses in their own variants, never in place of the key.
- **Dates** are read from the forms records hold (ISO 8601 with or without separators and time, ``/``
  and ``.`` separators, ``1990年5月3日``) into a :class:`PartialDate`. An impossible day (31 June) keeps
  the year and month; an impossible month keeps the year: a partial date still links weakly.
- **Addresses**: street types are folded to one abbreviation (``street`` and ``st`` are ``st``), the
  house number is split from the street name, postcodes keep letters and digits only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import zhconv  # type: ignore[import-untyped]  # zhconv ships no type information
from pypinyin import Style, lazy_pinyin

__all__ = [
    "COMPOUND_SURNAMES",
    "SURNAME_READINGS",
    "PartialDate",
    "fold",
    "han_form",
    "has_han",
    "initial",
    "name_key",
    "parse_date",
    "place_key",
    "postcode_key",
    "sex_code",
    "soundex",
    "split_street_line",
    "street_key",
    "swap_day_month",
]

#: Readings of Han family names that differ from the character's common reading (single and compound
#: surnames; the first matching prefix wins, so the two-character ones come first).
SURNAME_READINGS: dict[str, str] = {
    "万俟": "moqi",
    "尉迟": "yuchi",
    "长孙": "zhangsun",
    "单": "shan",
    "曾": "zeng",
    "区": "ou",
    "仇": "qiu",
    "解": "xie",
    "朴": "piao",
    "查": "zha",
    "盖": "ge",
    "乐": "yue",
    "缪": "miao",
    "覃": "qin",
    "召": "shao",
    "种": "chong",
    "翟": "zhai",
    "秘": "bi",
    "员": "yun",
    "长": "chang",
    "沈": "shen",
    "石": "shi",
    "柏": "bai",
    "薄": "bo",
    "褚": "chu",
    "华": "hua",
    "任": "ren",
    "燕": "yan",
    "牟": "mou",
    "宿": "su",
    "繁": "po",
    "句": "gou",
    "折": "she",
    "莘": "shen",
}
_SURNAME_PREFIXES = sorted(SURNAME_READINGS, key=len, reverse=True)

#: Two-character family names, for splitting a Han name written as one string (``欧阳娜娜``).
COMPOUND_SURNAMES = frozenset(
    {
        "欧阳", "司马", "诸葛", "上官", "东方", "夏侯", "皇甫", "令狐", "慕容", "公孙", "司徒", "尉迟",
        "万俟", "长孙", "宇文", "轩辕", "端木", "独孤", "南宫", "西门", "钟离", "申屠", "闻人", "澹台",
    }
)  # fmt: skip
# The family names with ``ü`` (吕 Lü, 女 Nü), as passports (LYU) and keyboards (LV) write them.
_U_UMLAUT_SURNAMES = {"lyu": "lu", "lv": "lu", "nyu": "nu", "nv": "nu"}

_SOUNDEX_CODES = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}

#: Street types folded to one spelling (English, with the common German and French ones).
_STREET_TYPES: dict[str, str] = {
    "street": "st",
    "str": "st",
    "road": "rd",
    "avenue": "ave",
    "av": "ave",
    "crescent": "cres",
    "cr": "cres",
    "crs": "cres",
    "place": "pl",
    "court": "ct",
    "drive": "dr",
    "lane": "ln",
    "terrace": "tce",
    "parade": "pde",
    "circuit": "cct",
    "close": "cl",
    "highway": "hwy",
    "boulevard": "blvd",
    "square": "sq",
    "grove": "gr",
    "way": "wy",
    "strasse": "st",
}
_STREET_LINE_LEADING_NUMBER = re.compile(r"^\s*(\d+[a-z]?(?:[-/]\d+[a-z]?)?)\s*,?\s+(.+)$")
_STREET_LINE_TRAILING_NUMBER = re.compile(r"^(.+?)\s+(\d+[a-z]?(?:[-/]\d+[a-z]?)?)\s*$")
_DATE_PATTERNS = (
    re.compile(r"^(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?(?:[t\s].*)?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
    re.compile(r"^(\d{4})年(?:(\d{1,2})月(?:(\d{1,2})日)?)?$"),
)
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_MIN_YEAR = 1800
_MAX_YEAR = 2200


def has_han(text: str) -> bool:
    """Whether ``text`` holds at least one CJK unified ideograph (a Han character)."""
    return not text.isascii() and _HAN.search(text) is not None


def _is_han(ch: str) -> bool:
    return _HAN.match(ch) is not None


@cache
def _load_zhconv_dictionary() -> None:
    """Load zhconv's dictionary through its path-taking loader, which closes the file (its default
    loader leaves the file open, a ResourceWarning)."""
    zhconv.loaddict(str(Path(zhconv.zhconv.__file__).with_name("zhcdict.json")))


def _to_simplified(text: str) -> str:
    _load_zhconv_dictionary()
    simplified: str = zhconv.convert(text, "zh-hans")
    return simplified


def _strip_accents(text: str) -> str:
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))


def fold(text: str) -> str:
    """NFKC, traditional Han to simplified, case-folded, accents stripped, runs of space made one space."""
    folded = unicodedata.normalize("NFKC", text)
    if has_han(folded):
        folded = _to_simplified(folded)
    folded = _strip_accents(folded.casefold())
    return " ".join(folded.split())


def _pinyin(han: str, *, family: bool) -> str:
    reading = ""
    if family:
        for prefix in _SURNAME_PREFIXES:
            if han.startswith(prefix):
                reading, han = SURNAME_READINGS[prefix], han[len(prefix) :]
                break
    if han:
        reading += "".join(lazy_pinyin(han, style=Style.NORMAL, v_to_u=True))
    return _strip_accents(reading)


def name_key(text: str | None, *, family: bool = False) -> str | None:
    """The comparable key of a given or family name: letters only; Han names as toneless pinyin.

    ``family=True`` applies the surname readings of :data:`SURNAME_READINGS` to a Han family name.
    ``None`` when no letter is left.
    """
    if not text:
        return None
    folded = fold(text)
    if has_han(folded):
        han = "".join(ch for ch in folded if _is_han(ch))
        folded = _pinyin(han, family=family)
    key = "".join(ch for ch in folded if ch.isalpha())
    if family:
        key = _U_UMLAUT_SURNAMES.get(key, key)
    return key or None


def han_form(text: str | None) -> str | None:
    """The simplified Han characters of a name, or ``None`` when it is not written in Han characters."""
    if not text:
        return None
    folded = fold(text)
    han = "".join(ch for ch in folded if _is_han(ch))
    return han or None


def soundex(key: str | None) -> str | None:
    """American Soundex (four characters) of a Latin-letter name key; ``None`` for other scripts."""
    if not key or not key.isascii() or not key.isalpha():
        return None
    first = key[0]
    digits = []
    previous = _SOUNDEX_CODES.get(first, "")
    for ch in key[1:]:
        code = _SOUNDEX_CODES.get(ch, "")
        if code and code != previous:
            digits.append(code)
        if ch not in "hw":
            previous = code
    return (first + "".join(digits) + "000")[:4]


def initial(key: str | None) -> str | None:
    """The first letter of a name key."""
    return key[0] if key else None


@dataclass(frozen=True, slots=True)
class PartialDate:
    """A date as far as it is known: a year, maybe a month, maybe a day (only with a month)."""

    year: int
    month: int | None = None
    day: int | None = None

    def iso(self) -> str:
        """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``."""
        text = f"{self.year:04d}"
        if self.month is not None:
            text += f"-{self.month:02d}"
            if self.day is not None:
                text += f"-{self.day:02d}"
        return text

    @property
    def complete(self) -> bool:
        """Whether year, month and day are all known."""
        return self.day is not None


def _valid_day(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def parse_date(text: str | None) -> PartialDate | None:
    """The :class:`PartialDate` in ``text``; ``None`` when not even a plausible year can be read."""
    if not text:
        return None
    folded = unicodedata.normalize("NFKC", text).strip().lower()
    for pattern in _DATE_PATTERNS:
        found = pattern.match(folded)
        if found is None:
            continue
        year = int(found.group(1))
        if not _MIN_YEAR <= year <= _MAX_YEAR:
            return None
        month = int(found.group(2)) if found.group(2) else None
        day = int(found.group(3)) if found.group(3) else None
        if month is None or not 1 <= month <= 12:
            return PartialDate(year)
        if day is None or not _valid_day(year, month, day):
            return PartialDate(year, month)
        return PartialDate(year, month, day)
    return None


def swap_day_month(value: PartialDate) -> PartialDate | None:
    """The date with day and month exchanged, when that is a different valid date; else ``None``."""
    if value.month is None or value.day is None or value.day == value.month or value.day > 12:
        return None
    if not _valid_day(value.year, value.day, value.month):
        return None  # pragma: no cover - a day of at most 12 is valid in every month
    return PartialDate(value.year, value.day, value.month)


def sex_code(text: str | None) -> str | None:
    """``"f"`` or ``"m"`` from FHIR ``gender`` and common spellings (``F``, ``女``, ``male``); else ``None``."""
    if not text:
        return None
    folded = fold(text)
    if folded in ("f", "female", "w", "woman", "女", "2"):
        return "f"
    if folded in ("m", "male", "man", "男", "1"):
        return "m"
    return None


def _alnum(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def postcode_key(text: str | None) -> str | None:
    """A postcode's letters and digits, upper case (``sw1a 1aa`` is ``SW1A1AA``)."""
    if not text:
        return None
    key = _alnum(fold(text)).upper()
    return key or None


def place_key(text: str | None) -> str | None:
    """A locality, state, building or house number: folded, letters and digits only."""
    if not text:
        return None
    key = _alnum(fold(text))
    return key or None


def _street_word(word: str) -> str:
    if word in _STREET_TYPES:
        return _STREET_TYPES[word]
    if word.endswith("strasse"):  # German compounds: Hauptstraße, Hauptstrasse, Hauptstr. agree
        return word[: -len("strasse")] + "st"
    if word.endswith("str") and len(word) > len("str"):
        return word[: -len("str")] + "st"
    return word


def street_key(text: str | None) -> str | None:
    """A street name with its type abbreviated one way (``Pinkerton Circuit`` is ``pinkertoncct``)."""
    if not text:
        return None
    words = re.split(r"[\s,.\-']+", fold(text))
    key = "".join(_street_word(word) for word in words if word)
    key = _alnum(key)
    return key or None


def split_street_line(line: str | None) -> tuple[str | None, str | None]:
    """``(house number, street)`` of an address line such as ``12 Pinkerton Cct`` or ``Hauptstraße 5``."""
    if not line:
        return None, None
    folded = fold(line)
    for pattern, number_group, street_group in (
        (_STREET_LINE_LEADING_NUMBER, 1, 2),
        (_STREET_LINE_TRAILING_NUMBER, 2, 1),
    ):
        found = pattern.match(folded)
        if found is not None:
            return found.group(number_group), found.group(street_group)
    return None, folded
