"""China's resident ID number (ISO 7064 MOD 11-2) and the normalisation of other national ids."""

from __future__ import annotations

import pytest

from common.linkage.national_id import (
    is_valid_resident_id,
    normalise_national_id,
    normalise_resident_id,
    resident_id_birth_date,
    resident_id_check_character,
    resident_id_sex,
)
from common.linkage.normalise import PartialDate

# The example number of GB 11643-1999 and another widely published valid number.
_VALID = ("11010519491231002X", "440524188001010014")


@pytest.mark.parametrize("number", _VALID)
def test_valid_resident_ids_pass_the_check(number: str) -> None:
    """A number whose 18th character is the MOD 11-2 check of the first 17 is valid."""
    assert resident_id_check_character(number[:17]) == number[17]
    assert is_valid_resident_id(number)


def test_a_changed_digit_fails_the_check() -> None:
    """Changing any one digit of a valid number makes it invalid (the check catches single errors)."""
    number = _VALID[0]
    for position in range(17):
        digit = str((int(number[position]) + 1) % 10)
        assert not is_valid_resident_id(number[:position] + digit + number[position + 1 :])


def test_full_width_digits_lower_case_x_and_spaces_are_normalised() -> None:
    """Input-method full-width digits, a lower-case x and grouping spaces give the plain number."""
    assert normalise_resident_id("１１０１０５１９４９１２３１００２ｘ") == _VALID[0]
    assert normalise_resident_id("110105 19491231 002x") == _VALID[0]


def test_first_generation_fifteen_digit_numbers_are_widened() -> None:
    """A 15-digit number gains the century 19 and its check character."""
    assert normalise_resident_id("110105491231002") == _VALID[0]


def test_a_number_with_an_impossible_birth_date_is_invalid() -> None:
    """A correct check character does not save a number whose birth date cannot exist."""
    first17 = "11010519491331002"
    assert not is_valid_resident_id(first17 + resident_id_check_character(first17))


def test_birth_date_and_sex_are_read_from_the_number() -> None:
    """Digits 7-14 are the birth date; the 17th is odd for men and even for women."""
    assert resident_id_birth_date(_VALID[0]) == PartialDate(1949, 12, 31)
    assert resident_id_sex(_VALID[0]) == "f"
    assert resident_id_sex(_VALID[1]) == "m"
    assert resident_id_sex("110105194912310021") is None


def test_check_character_needs_seventeen_digits() -> None:
    """The check is defined for exactly 17 ASCII digits."""
    with pytest.raises(ValueError, match="17"):
        resident_id_check_character("1234")


def test_national_ids_carry_their_scheme() -> None:
    """A resident ID number is cn:..., anything else id:..., so the two never produce one token."""
    assert normalise_national_id(_VALID[0]) == f"cn:{_VALID[0]}"
    assert normalise_national_id("123-45-6789") == "id:123456789"
    assert normalise_national_id("ab 12345") == "id:AB12345"


def test_a_resident_id_shaped_number_failing_its_check_is_dropped() -> None:
    """An 18-character number that looks like a resident ID but fails the check is not used at all."""
    assert normalise_national_id("110105194912310021") is None


def test_ids_said_to_be_chinese_must_pass_the_check() -> None:
    """With chinese=True anything but a valid resident ID number is dropped, and 15 digits are widened."""
    assert normalise_national_id("123456789", chinese=True) is None
    assert normalise_national_id("110105491231002", chinese=True) == f"cn:{_VALID[0]}"


@pytest.mark.parametrize("placeholder", ["000000000", "999-99-9999", "1234", "", None])
def test_placeholders_and_short_ids_are_dropped(placeholder: str | None) -> None:
    """One digit repeated, fewer than five characters, or nothing, is no identifier."""
    assert normalise_national_id(placeholder) is None
