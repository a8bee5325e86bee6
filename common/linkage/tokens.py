"""The linkage-token recipe: which feature combinations are hashed, under which keys, in which tier.

A node turns each patient's :class:`~common.linkage.demographics.Demographics` into a family of
tokens, one per *variant* whose features the record has. A variant is a combination of normalised
features (:mod:`common.linkage.features`); its token is

    HMAC-SHA256(K_variant, value_1 || 0x1F || value_2 || ...)
    K_variant = HKDF-SHA256(network linkage key, info="medfed/linkage/v1/" + variant name)

so the same person gives the same token at every node holding the network key, nobody without the
key can test a guess, and the tokens of two variants can never be compared with each other (one key
per variant). The recipe version is part of every ``info``: changing the recipe changes every token,
and tokens of two recipe versions never match by accident.

Why many variants: a token matches only if every feature in it agrees exactly, and records of one
person disagree somewhere (a typo in the surname, a new address, a missing date). Each variant leaves
other fields out, so the fields that still agree are found by some variant. Every variant carries at
least :data:`MIN_VARIANT_BITS` bits of evidence, so a token names only a handful of people even in an
index of millions (it is also a blocking key). The weak variants are the *minimal* such combinations
(no feature can be dropped without falling below the floor), because the lookup adds up the evidence of
all variants that matched (:mod:`common.linkage.matching`); a few more cover partial birth dates and
Han-character names, and the strong ones exist so that one token can decide.
Phonetic codes and initials enter only beside another name form, the birth date or the national id,
where they rescue a misspelt name without making a token that a street alone would match.

Tiers: a variant is **STRONG** when its own features carry at least :data:`STRONG_BITS` (then one
matching token is a MATCH), **WEAK** otherwise (initial-based or fewer fields: weak tokens must agree
with other weak tokens). The threshold was tuned on FEBRL 4 and an index of a million generated
people (``benchmarks/README.md``, "Linkage").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from common.crypto.kdf import derive_key, hmac_sha256
from common.linkage.demographics import Demographics
from common.linkage.features import evidence_bits, extract_features
from common.linkage.keys import LinkageKey

__all__ = [
    "MIN_VARIANT_BITS",
    "RECIPE_VERSION",
    "STRONG_BITS",
    "VARIANTS",
    "VARIANTS_BY_NAME",
    "Tier",
    "Token",
    "Variant",
    "VariantKeys",
    "tokens_for",
    "tokens_for_features",
]

#: Part of every per-variant key's HKDF info; a new recipe is a new version.
RECIPE_VERSION = "v1"
#: Evidence (bits) at which one variant decides a MATCH by itself.
STRONG_BITS = 35.0
#: Least evidence (bits) of any variant, so that no token is shared by many people.
MIN_VARIANT_BITS = 24.0
_SEPARATOR = "\x1f"  # unit separator: never part of a normalised value


class Tier(StrEnum):
    """How much one matching token of a variant says on its own."""

    STRONG = "strong"
    WEAK = "weak"


@dataclass(frozen=True, slots=True)
class Variant:
    """One combination of features: its name (the features joined with ``+``) and its tier."""

    name: str
    features: tuple[str, ...]
    tier: Tier
    bits: float


@dataclass(frozen=True, slots=True)
class Token:
    """One keyed token of a patient: the variant it was computed for, its tier, HMAC value in hex."""

    variant: str
    tier: Tier
    value_hex: str

    def __repr__(self) -> str:
        return f"Token(variant={self.variant!r}, tier={self.tier.value!r})"


_RECIPE: tuple[tuple[str, ...], ...] = (
    # Strong: each decides a MATCH alone.
    ("birth_date", "national_id"),
    ("given", "family", "birth_date", "postcode"),
    ("given", "family", "birth_date", "locality"),
    ("given", "family", "birth_date", "street"),
    # National id with one more fact (a mistyped id is often someone else's: never the id alone).
    ("given", "national_id"),
    ("given_phonetic", "national_id"),
    ("family", "national_id"),
    ("family_phonetic", "national_id"),
    ("postcode", "national_id"),
    ("locality", "national_id"),
    ("street", "national_id"),
    ("street_number", "national_id"),
    ("address_line2", "national_id"),
    ("given_initial", "family_initial", "national_id"),
    ("given_initial", "state", "national_id"),
    ("family_initial", "state", "national_id"),
    # Names with the date of birth (exact, phonetic and initial forms of either name).
    ("given", "family", "birth_date"),
    ("given", "family_phonetic", "birth_date"),
    ("given_phonetic", "family", "birth_date"),
    ("given_phonetic", "family_phonetic", "birth_date"),
    ("given", "family_initial", "birth_date"),
    ("given_phonetic", "family_initial", "birth_date"),
    ("given_initial", "family", "birth_date"),
    ("given_initial", "family_phonetic", "birth_date"),
    ("given", "family", "birth_year_month"),
    ("given_phonetic", "family_phonetic", "birth_year_month"),
    ("given_han", "family_han", "birth_date"),
    ("given_han", "family_han", "national_id"),
    # One name with the date of birth and a part of the address.
    ("given", "birth_date", "state"),
    ("given", "birth_date", "street_number"),
    ("given_phonetic", "birth_date", "state"),
    ("given_phonetic", "birth_date", "street_number"),
    ("given_initial", "birth_date", "street_number"),
    ("family", "birth_date", "state"),
    ("family", "birth_date", "street_number"),
    ("family_phonetic", "birth_date", "state"),
    ("family_phonetic", "birth_date", "street_number"),
    ("family_initial", "birth_date", "street_number"),
    # Both names with one part of the address.
    ("given", "family", "postcode"),
    ("given", "family", "locality"),
    ("given", "family", "street"),
    ("given", "family", "address_line2"),
    ("given", "family_phonetic", "postcode"),
    ("given", "family_phonetic", "locality"),
    ("given", "family_phonetic", "street"),
    ("given", "family_phonetic", "address_line2"),
    ("given_phonetic", "family", "postcode"),
    ("given_phonetic", "family", "locality"),
    ("given_phonetic", "family", "street"),
    ("given_phonetic", "family", "address_line2"),
    ("given_phonetic", "family_phonetic", "street"),
    ("given_phonetic", "family_phonetic", "address_line2"),
    # One name with two parts of the address.
    ("given", "postcode", "locality"),
    ("given", "postcode", "street"),
    ("given", "postcode", "address_line2"),
    ("given", "locality", "street"),
    ("given", "locality", "address_line2"),
    ("given", "street", "street_number"),
    ("given", "street", "address_line2"),
    ("family", "postcode", "locality"),
    ("family", "postcode", "street"),
    ("family", "postcode", "address_line2"),
    ("family", "locality", "street"),
    ("family", "locality", "address_line2"),
    ("family", "street", "street_number"),
    ("family", "street", "address_line2"),
    # The date of birth with one part of the address.
    ("birth_date", "postcode"),
    ("birth_date", "locality"),
    ("birth_date", "street"),
    ("birth_date", "address_line2"),
    # The address alone (three parts).
    ("postcode", "locality", "street"),
    ("postcode", "locality", "street_number"),
    ("postcode", "locality", "address_line2"),
    ("postcode", "street", "street_number"),
    ("postcode", "street", "address_line2"),
    ("postcode", "street_number", "address_line2"),
    ("locality", "street", "street_number"),
    ("locality", "street", "address_line2"),
    ("locality", "street_number", "address_line2"),
    ("street", "street_number", "address_line2"),
)


def _variant(features: tuple[str, ...]) -> Variant:
    bits = evidence_bits(features)
    return Variant(
        name="+".join(features),
        features=features,
        tier=Tier.STRONG if bits >= STRONG_BITS else Tier.WEAK,
        bits=bits,
    )


#: Every variant of the recipe, in a fixed order.
VARIANTS: tuple[Variant, ...] = tuple(_variant(features) for features in _RECIPE)
VARIANTS_BY_NAME: Mapping[str, Variant] = {variant.name: variant for variant in VARIANTS}


class VariantKeys:
    """The per-variant HMAC keys derived from one network linkage key (derive once, use per record)."""

    __slots__ = ("_keys", "entries", "key_id")

    def __init__(self, key: LinkageKey) -> None:
        """Derive every variant's key from ``key`` with HKDF-SHA256."""
        self.key_id = key.key_id
        self._keys = {
            variant.name: derive_key(key.secret, info=f"medfed/linkage/{RECIPE_VERSION}/{variant.name}".encode())
            for variant in VARIANTS
        }
        #: ``(variant, its key)`` in recipe order, for the token loop.
        self.entries: tuple[tuple[Variant, bytes], ...] = tuple((v, self._keys[v.name]) for v in VARIANTS)

    def key_for(self, variant: str) -> bytes:
        """The HMAC key of one variant."""
        return self._keys[variant]

    def __repr__(self) -> str:
        return f"VariantKeys(key_id={self.key_id!r})"


@lru_cache(maxsize=4)
def _variant_keys(key: LinkageKey) -> VariantKeys:
    return VariantKeys(key)


def _keys(key: LinkageKey | VariantKeys) -> VariantKeys:
    return key if isinstance(key, VariantKeys) else _variant_keys(key)


def tokens_for_features(features: Mapping[str, str], key: LinkageKey | VariantKeys) -> list[Token]:
    """The token of every variant whose features are all in ``features`` (recipe order).

    ``features`` holds present features only (:func:`~common.linkage.features.extract_features`).
    """
    tokens = []
    for variant, variant_key in _keys(key).entries:
        try:
            message = _SEPARATOR.join([features[name] for name in variant.features])
        except KeyError:
            continue
        tokens.append(Token(variant.name, variant.tier, hmac_sha256(variant_key, message.encode()).hex()))
    return tokens


def tokens_for(demographics: Demographics, key: LinkageKey | VariantKeys) -> list[Token]:
    """The token family of one patient under the network linkage ``key`` (recipe order, no duplicates)."""
    return tokens_for_features(extract_features(demographics), key)
