"""Demographics: who a synthetic patient is, and the FHIR R4 ``Patient`` resource of them.

A person is drawn from a network-wide population: a country (and so a postcode list and name locale),
sex, age from the population pyramid, death at old-age rates, names from Zipf-weighted frequency lists
(about 5 % Chinese, written in pinyin plus a second ``official`` name in Han characters), an optional
national id, phone and marital status. :func:`perturb` gives the small differences (a typo, a move, a
missing id) with which one person appears at a second hospital, for record-linkage tests.

Identifiers are made up and clearly fake: national ids are ``9XX-XX-XXXX`` (the 9xx area is never
issued as a US SSN), GB phones use Ofcom's drama range 07700 900xxx and US phones 555-01xx; other
countries' phone numbers are random digits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from random import Random
from typing import Any

from node.generator import names
from node.generator.catalog import AGE_BANDS, annual_mortality
from node.generator.clock import DAY, TODAY, YEAR, date_string, datetime_string
from node.generator.sampling import Weighted, zipf

__all__ = ["NATIONAL_ID_SYSTEM", "Person", "draw_person", "mrn", "national_id", "patient_resource", "perturb"]

NATIONAL_ID_SYSTEM = "urn:oid:2.16.840.1.113883.4.1"
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

_COUNTRY = Weighted(("DE", "GB", "FR", "ES", "IT", "NL", "US"), (25, 20, 15, 12, 12, 8, 8))
_LOCALES = tuple(names.FAMILY)
_FAMILY = {locale: zipf(items, 0.8, 2.0) for locale, items in names.FAMILY.items()}
_GIVEN = {(loc, sex): zipf(items, 0.8, 2.0) for loc, by_sex in names.GIVEN.items() for sex, items in by_sex.items()}
_CN_FAMILY = zipf(names.CHINESE_FAMILY, 1.0)
_CN_GIVEN = {sex: zipf(items, 0.8) for sex, items in names.CHINESE_GIVEN.items()}
_POSTCODES = {country: zipf(rows, 0.8) for country, rows in names.POSTCODES.items()}
_AGE = Weighted(tuple(start for start, _ in AGE_BANDS), tuple(share for _, share in AGE_BANDS))
_PHONE_PREFIX = {"DE": "+49 ", "FR": "+33 ", "ES": "+34 ", "IT": "+39 ", "NL": "+31 "}
_MARITAL_DISPLAY = {"M": "Married", "S": "Never Married", "D": "Divorced", "W": "Widowed"}


@dataclass(slots=True)
class Person:
    """The demographic facts of one synthetic person (before site-specific identifiers)."""

    gender: str  # FHIR administrative gender
    sex: str  # "male" or "female": what the physiology models use
    birth: int  # seconds since the epoch, midnight UTC
    death: int | None
    country: str
    family: str
    given: list[str]
    han: tuple[str, str] | None  # (family, given) in Han characters for Chinese names
    national_id: str | None
    phone: str | None
    address: dict[str, Any]
    marital: str | None

    @property
    def end(self) -> int:
        """The last moment anything can happen to this person: death, or the reference today."""
        return TODAY if self.death is None else self.death

    def age(self, ts: int) -> float:
        """Age in years at ``ts``."""
        return (ts - self.birth) / YEAR


def _address(rng: Random, country: str) -> dict[str, Any]:
    postcode, city, state = _POSTCODES[country].pick(rng)
    street = rng.choice(names.STREETS[names.COUNTRIES[country]])
    number = rng.randint(1, 140)
    line = f"{number} {street}" if country in ("GB", "US", "FR") else f"{street} {number}"
    address: dict[str, Any] = {"use": "home", "line": [line], "city": city}
    if state:
        address["state"] = state
    address["postalCode"] = postcode
    address["country"] = country
    return address


def _phone(rng: Random, country: str) -> str:
    if country == "GB":
        return f"+44 7700 900{rng.randrange(1000):03d}"
    if country == "US":
        return f"+1 {rng.randint(201, 989)}-555-01{rng.randrange(100):02d}"
    return f"{_PHONE_PREFIX[country]}6{rng.randrange(10**8):08d}"


def _unique_number(key: str, index: int, size: int) -> int:
    """A number in ``[0, size)`` that differs for every index below ``size`` (a keyed bijection)."""
    offset = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return (index * 48_271 + offset) % size  # 48271 is prime and shares no factor with 2 or 5


def national_id(*, seed: int, site: str, index: int, shared: bool) -> str:
    """A fake, SSN-shaped national id, unique per site (and per network for shared persons).

    The 8 digits after the leading 9 are a site block (two digits from the site name, 99 for persons
    known at several sites) and a keyed bijection of the patient index, so ids collide neither within a
    site nor between a site's own people and the shared people for indexes below one million.
    """
    if shared:
        block, serial = 99, _unique_number(f"national-id:{seed}", index, 1_000_000)
    else:
        block = _unique_number(f"site-block:{site}", 0, 99)
        serial = _unique_number(f"national-id:{seed}:{site}", index, 1_000_000)
    digits = f"9{block:02d}{serial:06d}"
    return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"


def mrn(site: str, index: int) -> str:
    """The site's medical record number of patient ``index``: unique within the site."""
    return f"{_unique_number(f'mrn:{site}', index, 100_000_000):08d}"


def draw_person(rng: Random, national: str) -> Person:
    """Draw one person's demographics; ``national`` is the id to use if they have one (about 60 %)."""
    roll = rng.random()
    gender = "other" if roll < 0.003 else "unknown" if roll < 0.005 else "female" if roll < 0.513 else "male"
    sex = gender if gender in ("male", "female") else rng.choice(("male", "female"))
    band = _AGE.pick(rng)
    age = band + rng.random() * (6 if band == 95 else 5)
    age = max(age, 0.02)
    birth = TODAY - int(age * YEAR)
    birth -= birth % DAY
    death = None
    if age > 1 and rng.random() < 1 - (1 - annual_mortality(age)) ** 5:
        death = TODAY - int(rng.random() * min(5.0, age - 0.5) * YEAR)
    country = _COUNTRY.pick(rng)
    locale = names.COUNTRIES[country]
    han = None
    roll = rng.random()
    if roll < 0.05:
        (family, han_family), (given_name, han_given) = _CN_FAMILY.pick(rng), _CN_GIVEN[sex].pick(rng)
        given, han = [given_name], (han_family, han_given)
    else:
        if roll > 0.82:  # about 18 % carry names from another locale (migration, marriage)
            locale = rng.choice(_LOCALES)
        family = _FAMILY[locale].pick(rng)
        if locale == "es" and rng.random() < 0.7:
            family = f"{family} {_FAMILY[locale].pick(rng)}"
        given = [_GIVEN[locale, sex].pick(rng)]
        if rng.random() < 0.22:
            second = _GIVEN[locale, sex].pick(rng)
            if second != given[0]:
                given.append(second)
    marital = None
    if age >= 18:
        roll = rng.random()
        widowed = 0.02 if age < 60 else 0.12 if age < 75 else 0.35
        marital = "W" if roll < widowed else "D" if roll < widowed + 0.1 else "S" if roll < 0.45 else "M"
    return Person(
        gender=gender,
        sex=sex,
        birth=birth,
        death=death,
        country=country,
        family=family,
        given=given,
        han=han,
        national_id=national if rng.random() < 0.6 else None,
        phone=_phone(rng, country) if rng.random() < 0.75 else None,
        address=_address(rng, country),
        marital=marital,
    )


def _typo(rng: Random, word: str) -> str:
    if len(word) < 3:
        return word
    i = rng.randrange(len(word) - 1)
    kind = rng.random()
    if kind < 0.4:  # transpose two neighbours
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind < 0.7:  # drop one letter
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # double one letter


def perturb(rng: Random, person: Person) -> None:
    """Change ``person`` in place the way a second hospital's record of them tends to differ."""
    if rng.random() < 0.08:
        person.family = _typo(rng, person.family)
    if rng.random() < 0.05:
        person.given = [_typo(rng, person.given[0]), *person.given[1:]]
    if len(person.given) > 1 and rng.random() < 0.3:
        person.given = person.given[:1]
    if rng.random() < 0.2:
        person.address = _address(rng, person.country)
    if person.national_id is not None and rng.random() < 0.3:
        person.national_id = None
    if rng.random() < 0.3:
        person.phone = None
    elif rng.random() < 0.1:
        person.phone = _phone(rng, person.country)
    if rng.random() < 0.02:  # a mistyped day of birth
        person.birth += DAY if rng.random() < 0.5 else -DAY


def patient_resource(person: Person, *, patient_id: str, site: str, index: int) -> dict[str, Any]:
    """The FHIR R4 ``Patient`` of ``person`` as registered at ``site`` under position ``index``."""
    identifiers: list[dict[str, Any]] = [
        {
            "use": "usual",
            "type": {"coding": [{"system": _V2_0203, "code": "MR", "display": "Medical record number"}]},
            "system": f"urn:medfed:{site}:mrn",
            "value": mrn(site, index),
        }
    ]
    if person.national_id is not None:
        identifiers.append(
            {
                "use": "official",
                "type": {"coding": [{"system": _V2_0203, "code": "SS", "display": "Social Security number"}]},
                "system": NATIONAL_ID_SYSTEM,
                "value": person.national_id,
            }
        )
    human_names: list[dict[str, Any]] = [{"use": "official", "family": person.family, "given": person.given}]
    if person.han is not None:
        han_family, han_given = person.han
        human_names.append(
            {"use": "official", "text": han_family + han_given, "family": han_family, "given": [han_given]}
        )
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        # The standard label for test data: nobody should mistake a generated record for a real one.
        "meta": {"security": [{"system": _ACT_REASON, "code": "HTEST", "display": "test health data"}]},
        "identifier": identifiers,
        "name": human_names,
    }
    if person.phone is not None:
        resource["telecom"] = [{"system": "phone", "value": person.phone, "use": "mobile"}]
    resource["gender"] = person.gender
    resource["birthDate"] = date_string(person.birth)
    if person.death is not None:
        resource["deceasedDateTime"] = datetime_string(person.death)
    resource["address"] = [dict(person.address, line=list(person.address["line"]))]
    if person.marital is not None:
        code = person.marital
        resource["maritalStatus"] = {"coding": [{"system": _MARITAL, "code": code, "display": _MARITAL_DISPLAY[code]}]}
    return resource
