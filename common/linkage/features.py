"""Features: the normalised facts that tokens combine, each with the evidence its agreement carries.

A feature is one normalised form of one field (``family``, its Soundex ``family_phonetic``, its
``family_initial``, ...). Features of one field form a *group*: two records agreeing on ``family``
also agree on ``family_phonetic``, so a group counts once, at its strongest agreeing feature.

The **weight** of a feature is the evidence, in bits, that two different people agree on it by chance:
``-log2(sum of p_i^2)`` over the value frequencies ``p_i``. The Latin name forms and the address
parts were measured on FEBRL 4's A file (5,000 synthetic Australians; ``benchmarks/linkage.py
--features`` prints them); the birth-date forms assume births spread evenly over a century; the Han
forms are estimates for Chinese names; a national id is capped at 20 bits because a mistyped number is
often another person's valid one. Postcode and state share a
group, since in real data a postcode implies its state. Features of different groups are treated as
independent, which is exact for FEBRL's generator and optimistic for street and locality in real data;
the match threshold in :mod:`common.linkage.matching` leaves a margin for it.

These weights fit a population like FEBRL's. Where a network's fields are coarser (a locality that is
a whole city, a few very common family names), the same agreement is far weaker evidence, so a network
calibrates: each node measures its own patients' chance agreement per feature (:func:`measured_bits`,
one number per feature, nothing about anyone), and the weights in use are the recipe's lowered to the
measurement (:func:`calibrated_weights`), never raised.

Sex is not a feature: one bit of evidence, and miscoded often enough (and legitimately changed) that a
variant needing it would lose more true matches than it separates. The node keeps it in
:class:`~common.linkage.demographics.Demographics` for its own re-check of a match.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from common.linkage.demographics import Demographics
from common.linkage.national_id import normalise_national_id
from common.linkage.normalise import (
    han_form,
    initial,
    name_key,
    parse_date,
    place_key,
    postcode_key,
    soundex,
    street_key,
)

__all__ = ["FEATURES", "Feature", "calibrated_weights", "evidence_bits", "extract_features", "measured_bits"]


@dataclass(frozen=True, slots=True)
class Feature:
    """A normalised form of one field: its name, the group it belongs to, and its weight in bits."""

    name: str
    group: str
    bits: float


FEATURES: Mapping[str, Feature] = {
    feature.name: feature
    for feature in (
        Feature("given", "given", 7.8),
        Feature("given_phonetic", "given", 7.0),
        Feature("given_initial", "given", 3.9),
        Feature("given_han", "given", 9.0),
        Feature("family", "family", 7.7),
        Feature("family_phonetic", "family", 7.4),
        Feature("family_initial", "family", 3.8),
        Feature("family_han", "family", 6.0),
        Feature("birth_date", "birth", 15.1),
        Feature("birth_year_month", "birth", 10.2),
        Feature("birth_year", "birth", 6.6),
        Feature("postcode", "region", 9.5),
        Feature("state", "region", 2.1),
        Feature("locality", "locality", 9.5),
        Feature("street", "street", 10.3),
        Feature("street_number", "street_number", 6.1),
        Feature("address_line2", "address_line2", 10.0),
        Feature("national_id", "national_id", 20.0),
    )
}


def evidence_bits(feature_names: Iterable[str], weights: Mapping[str, float] | None = None) -> float:
    """The evidence of agreeing on ``feature_names``: per group, the strongest feature; summed over groups.

    ``weights`` replaces the recipe's weight of the features it names (a calibrated network).
    """
    strongest: dict[str, float] = {}
    for name in feature_names:
        feature = FEATURES[name]
        bits = weights.get(name, feature.bits) if weights else feature.bits
        strongest[feature.group] = max(strongest.get(feature.group, 0.0), bits)
    return round(sum(strongest.values()), 6)


def measured_bits(records: Iterable[Mapping[str, str]]) -> dict[str, float]:
    """Each feature's chance agreement in ``records`` (extracted features), in bits.

    The collision probability is estimated without bias, ``(sum c_i^2 - n) / (n (n - 1))`` over value
    counts ``c_i``, so a nearly unique field does not look weaker than it is just because the sample is
    small. Features seen fewer than twice, or never twice with one value, are left out (no estimate).
    """
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        for name, value in record.items():
            per_value = counts.setdefault(name, {})
            per_value[value] = per_value.get(value, 0) + 1
    measured: dict[str, float] = {}
    for name, per_value in counts.items():
        n = sum(per_value.values())
        pairs = sum(c * c for c in per_value.values()) - n
        if n >= 2 and pairs > 0:
            measured[name] = round(-math.log2(pairs / (n * (n - 1))), 3)
    return measured


def calibrated_weights(measured: Mapping[str, float]) -> dict[str, float]:
    """The recipe's weights, lowered to what was ``measured`` where the data agree by chance more often.

    Calibration only ever lowers a weight: a network whose localities are whole cities, or whose
    family names are few, must not be credited with FEBRL's suburbs and surnames; a weight is never
    raised above the recipe's, which already assumes a large, diverse population.
    """
    return {name: min(feature.bits, measured.get(name, feature.bits)) for name, feature in FEATURES.items()}


def extract_features(demographics: Demographics) -> dict[str, str]:
    """The normalised value of every feature that ``demographics`` has (absent features are left out)."""
    values: dict[str, str | None] = {}
    given = name_key(demographics.given)
    family = name_key(demographics.family, family=True)
    values["given"] = given
    values["given_phonetic"] = soundex(given)
    values["given_initial"] = initial(given)
    values["given_han"] = han_form(demographics.given)
    values["family"] = family
    values["family_phonetic"] = soundex(family)
    values["family_initial"] = initial(family)
    values["family_han"] = han_form(demographics.family)
    birth = parse_date(demographics.birth_date)
    if birth is not None:
        values["birth_year"] = f"{birth.year:04d}"
        if birth.month is not None:
            values["birth_year_month"] = f"{birth.year:04d}-{birth.month:02d}"
        if birth.complete:
            values["birth_date"] = birth.iso()
    values["postcode"] = postcode_key(demographics.postcode)
    values["state"] = place_key(demographics.state)
    values["locality"] = place_key(demographics.locality)
    values["street"] = street_key(demographics.street)
    values["street_number"] = place_key(demographics.street_number)
    values["address_line2"] = place_key(demographics.address_line2)
    values["national_id"] = normalise_national_id(demographics.national_id, chinese=demographics.national_id_is_chinese)
    return {name: value for name, value in values.items() if value}
