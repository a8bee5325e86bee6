"""Normalisation of names, dates, sex, postcodes and address parts for linkage tokens."""

from __future__ import annotations

import pytest

from common.linkage.normalise import (
    PartialDate,
    fold,
    han_form,
    name_key,
    parse_date,
    postcode_key,
    sex_code,
    soundex,
    split_street_line,
    street_key,
    swap_day_month,
)


@pytest.mark.parametrize("spelling", ["Mary-Jane", "mary jane", "MARYJANE", " Mary  Jane ", "Ｍａｒｙ　Ｊａｎｅ"])
def test_name_keys_ignore_case_spacing_punctuation_and_full_width_forms(spelling: str) -> None:
    """Case, spaces, hyphens and full-width letters do not change a name key."""
    assert name_key(spelling) == "maryjane"


def test_name_keys_drop_apostrophes_and_accents() -> None:
    """O'Brien is obrien; Müller, MULLER and müller share one key."""
    assert name_key("O'Brien") == "obrien"
    assert name_key("Müller") == name_key("MULLER") == name_key("müller") == "muller"


def test_name_key_of_nothing_is_none() -> None:
    """An empty, missing or punctuation-only name has no key."""
    assert name_key(None) is None
    assert name_key("") is None
    assert name_key(" - ") is None


def test_traditional_and_simplified_han_names_share_key_and_han_form() -> None:
    """張偉 (traditional) and 张伟 (simplified) give the same pinyin key and the same simplified form."""
    assert name_key("張偉") == name_key("张伟") == "zhangwei"
    assert han_form("張偉") == han_form("张伟") == "张伟"


def test_han_name_and_its_pinyin_share_a_key() -> None:
    """A Han name and its toneless pinyin, however spaced or cased, have one key."""
    assert name_key("王小明") == name_key("Wang Xiao-Ming") == name_key("WANGXIAOMING")


def test_latin_names_have_no_han_form() -> None:
    """Only names written in Han characters have a Han form."""
    assert han_form("Zhang Wei") is None
    assert han_form(None) is None


def test_family_names_use_surname_readings() -> None:
    """曾, 单 and 区 read Zeng, Shan and Ou as family names (and differently as ordinary words)."""
    assert name_key("曾", family=True) == "zeng"
    assert name_key("单", family=True) == "shan"
    assert name_key("區", family=True) == "ou"
    assert name_key("曾") == "ceng"


@pytest.mark.parametrize("spelling", ["Lü", "Lv", "LYU", "lu", "吕", "呂"])
def test_family_names_with_u_umlaut_agree_however_typed(spelling: str) -> None:
    """Lü, Lv, Lyu and 吕/呂 are one family name key."""
    assert name_key(spelling, family=True) == "lu"


@pytest.mark.parametrize(
    ("name", "code"),
    [("robert", "r163"), ("rupert", "r163"), ("tymczak", "t522"), ("pfister", "p236"), ("ashcraft", "a261")],
)
def test_soundex_follows_american_soundex(name: str, code: str) -> None:
    """Soundex codes are the standard American ones (h and w do not separate equal codes)."""
    assert soundex(name) == code


def test_soundex_is_none_for_other_scripts() -> None:
    """Soundex is defined for Latin letters only."""
    assert soundex("иван") is None
    assert soundex(None) is None


@pytest.mark.parametrize(
    "text",
    ["1985-03-02", "19850302", "1985/3/2", "1985.03.02", "1985年3月2日", "1985-03-02T10:00:00Z", "１９８５-０３-０２"],
)
def test_dates_are_read_from_common_forms(text: str) -> None:
    """ISO dates with or without separators or time, slashes, dots, Chinese and full-width forms agree."""
    assert parse_date(text) == PartialDate(1985, 3, 2)


def test_partial_and_impossible_dates_keep_what_is_valid() -> None:
    """A year-month stays partial; an impossible day keeps year and month; an impossible month the year."""
    assert parse_date("1985-03") == PartialDate(1985, 3)
    assert parse_date("19571233") == PartialDate(1957, 12)
    assert parse_date("1985-02-30") == PartialDate(1985, 2)
    assert parse_date("1985-13-01") == PartialDate(1985)
    assert parse_date("1985").iso() == "1985"  # type: ignore[union-attr]


def test_unreadable_dates_are_none() -> None:
    """Text that holds no plausible year is no date."""
    assert parse_date("unknown") is None
    assert parse_date("0001-01-01") is None
    assert parse_date("") is None


def test_day_and_month_swap_only_when_it_is_another_valid_date() -> None:
    """3 Feb becomes 2 Mar; a day above 12, or equal to the month, has no swap."""
    assert swap_day_month(PartialDate(1985, 3, 2)) == PartialDate(1985, 2, 3)
    assert swap_day_month(PartialDate(1985, 3, 13)) is None
    assert swap_day_month(PartialDate(1985, 4, 4)) is None
    assert swap_day_month(PartialDate(1985, 3)) is None


@pytest.mark.parametrize(
    ("text", "code"), [("male", "m"), ("M", "m"), ("男", "m"), ("female", "f"), ("F", "f"), ("女", "f")]
)
def test_sex_codes(text: str, code: str) -> None:
    """FHIR genders and common spellings fold to f or m."""
    assert sex_code(text) == code


def test_other_and_unknown_sex_are_none() -> None:
    """other, unknown and missing are not a sex code."""
    assert sex_code("other") is None
    assert sex_code("unknown") is None
    assert sex_code(None) is None


def test_postcodes_keep_letters_and_digits_in_upper_case() -> None:
    """sw1a 1aa and SW1A1AA agree, and full-width digits are digits."""
    assert postcode_key("sw1a 1aa") == postcode_key("SW1A1AA") == "SW1A1AA"
    assert postcode_key("１０００１０") == "100010"


def test_street_types_fold_to_one_spelling() -> None:
    """Circuit and Cct agree; Hauptstraße, Hauptstr. and hauptstrasse agree."""
    assert street_key("Pinkerton Circuit") == street_key("pinkerton cct")
    assert street_key("Hauptstraße") == street_key("Hauptstr.") == street_key("hauptstrasse")
    assert street_key("Pinkerton Circuit") != street_key("Pinkerton Place")


def test_address_lines_split_into_number_and_street() -> None:
    """A leading or trailing house number is split from the street name."""
    assert split_street_line("12 Pinkerton Cct") == ("12", "pinkerton cct")
    assert split_street_line("Hauptstraße 5") == ("5", "hauptstrasse")
    assert split_street_line("Main Street") == (None, "main street")
    assert split_street_line(None) == (None, None)


def test_fold_makes_traditional_simplified_and_collapses_space() -> None:
    """fold() gives simplified characters, lower case, no accents, single spaces."""
    assert fold("  劉　Élodie  ") == "刘 elodie"
