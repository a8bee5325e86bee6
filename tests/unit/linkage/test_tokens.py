"""The token recipe: determinism, key separation, tiers, and what spelling differences it absorbs."""

from __future__ import annotations

from dataclasses import replace

from common.crypto.kdf import derive_key, hmac_sha256
from common.linkage.demographics import Demographics
from common.linkage.features import FEATURES, evidence_bits
from common.linkage.keys import LinkageKey
from common.linkage.tokens import (
    MIN_VARIANT_BITS,
    RECIPE_VERSION,
    STRONG_BITS,
    VARIANTS,
    VARIANTS_BY_NAME,
    Tier,
    VariantKeys,
    tokens_for,
)

KEY = LinkageKey(bytes(range(32)))
PERSON = Demographics(
    given="Michaela",
    family="Neumann",
    birth_date="1915-11-11",
    postcode="4223",
    street_number="8",
    street="Stanley Street",
    address_line2="Miami",
    locality="Winston Hills",
    state="NSW",
    national_id="5304218",
)


def _values(demographics: Demographics, key: LinkageKey = KEY) -> dict[str, str]:
    return {token.variant: token.value_hex for token in tokens_for(demographics, key)}


def test_tokens_are_deterministic() -> None:
    """The same demographics under the same key give the same tokens, in recipe order."""
    first = tokens_for(PERSON, KEY)
    assert first == tokens_for(PERSON, KEY)
    order = [variant.name for variant in VARIANTS]
    assert [token.variant for token in first] == sorted((t.variant for t in first), key=order.index)


def test_a_known_token_value_is_pinned() -> None:
    """given+family+birth_date is HMAC-SHA256(HKDF(key, medfed/linkage/v1/<variant>), values joined by 0x1F)."""
    variant_key = derive_key(KEY.secret, info=b"medfed/linkage/v1/given+family+birth_date")
    expected = hmac_sha256(variant_key, b"michaela\x1fneumann\x1f1915-11-11").hex()
    assert RECIPE_VERSION == "v1"
    assert _values(PERSON)["given+family+birth_date"] == expected


def test_a_different_network_key_gives_different_tokens() -> None:
    """No token of one network key equals any token of another."""
    other = LinkageKey(bytes(range(1, 33)))
    assert not set(_values(PERSON).values()) & set(_values(PERSON, other).values())


def test_each_variant_has_its_own_key() -> None:
    """Two variants hashing the same bytes (postcode and locality both 1234) still give different tokens."""
    person = Demographics(birth_date="1980-01-02", postcode="1234", locality="1234")
    values = _values(person)
    assert values["birth_date+postcode"] != values["birth_date+locality"]
    keys = VariantKeys(KEY)
    assert len({keys.key_for(variant.name) for variant in VARIANTS}) == len(VARIANTS)


def test_spelling_differences_give_the_same_tokens() -> None:
    """Case, accents, spacing, date format and full-width digits do not change any token."""
    respelt = replace(
        PERSON,
        given="MICHAELA",
        family="Néumann",
        birth_date="19151111",
        postcode="４２２３",
        street="stanley st",
        locality="winston-hills",
    )
    assert _values(respelt) == _values(PERSON)


def test_traditional_simplified_and_pinyin_names_share_name_tokens() -> None:
    """張偉, 张伟 and Zhang Wei born the same day share given+family+birth_date; the Han forms share more."""
    simplified = Demographics(given="伟", family="张", birth_date="1980-05-06")
    traditional = replace(simplified, given="偉", family="張")
    pinyin = replace(simplified, given="Wei", family="ZHANG")
    assert _values(simplified) == _values(traditional)
    assert _values(simplified)["given+family+birth_date"] == _values(pinyin)["given+family+birth_date"]
    assert "given_han+family_han+birth_date" in _values(simplified)
    assert "given_han+family_han+birth_date" not in _values(pinyin)


def test_a_record_gets_tokens_only_for_variants_it_has_all_features_of() -> None:
    """Missing fields leave their variants out; an empty record has no tokens."""
    assert tokens_for(Demographics(), KEY) == []
    names_only = _values(Demographics(given="Ann", family="Lee"))
    assert names_only == {}
    with_birth = _values(Demographics(given="Ann", family="Lee", birth_date="1990-02-03"))
    assert all("national_id" not in name and "postcode" not in name for name in with_birth)
    assert "given+family+birth_date" in with_birth


def test_every_variant_is_selective_and_well_formed() -> None:
    """Variants combine features of distinct groups, carry at least MIN_VARIANT_BITS and have unique names."""
    assert len(VARIANTS_BY_NAME) == len(VARIANTS)
    for variant in VARIANTS:
        groups = [FEATURES[name].group for name in variant.features]
        assert len(set(groups)) == len(groups), variant.name
        assert variant.bits >= MIN_VARIANT_BITS, variant.name
        assert variant.name == "+".join(variant.features)


def test_strong_variants_are_those_that_alone_reach_the_strong_threshold() -> None:
    """A variant is STRONG exactly when its own evidence is at least STRONG_BITS; both tiers exist."""
    for variant in VARIANTS:
        assert (variant.tier is Tier.STRONG) == (evidence_bits(variant.features) >= STRONG_BITS)
    strong = {variant.name for variant in VARIANTS if variant.tier is Tier.STRONG}
    assert "birth_date+national_id" in strong
    assert "given_initial+family+birth_date" not in strong


def test_token_repr_does_not_show_the_value() -> None:
    """A token prints its variant and tier, never its value."""
    token = tokens_for(PERSON, KEY)[0]
    assert token.value_hex not in repr(token)
    assert token.variant in repr(token)


def test_variant_keys_repr_shows_only_the_key_id() -> None:
    """Derived keys print as the network key's id."""
    text = repr(VariantKeys(KEY))
    assert KEY.key_id in text
    assert KEY.to_hex() not in text


def test_a_resident_id_typed_with_full_width_digits_gives_the_same_tokens() -> None:
    """Full-width digits, grouping spaces and a lower-case x in a resident ID number change no token."""
    typed = Demographics(birth_date="1949-12-31", national_id="１１０１０５ １９４９１２３１ ００２ｘ")
    plain = Demographics(birth_date="1949-12-31", national_id="11010519491231002X")
    assert _values(typed) == _values(plain)
    assert "birth_date+national_id" in _values(plain)


def test_a_resident_id_with_a_wrong_check_character_gives_no_id_tokens() -> None:
    """A mistyped resident ID number is dropped, so it can never match another person's number."""
    mistyped = Demographics(birth_date="1949-12-31", national_id="110105194912310021")
    assert not any("national_id" in name for name in _values(mistyped))
