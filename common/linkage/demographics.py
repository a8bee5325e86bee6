"""The demographic facts that linkage tokens are computed from, and how a node reads them from FHIR.

A node builds one :class:`Demographics` per patient (from its FHIR ``Patient`` with
:func:`from_fhir_patient`, or from any other source field by field) and hands it to
:func:`common.linkage.tokens.tokens_for`. The values are kept as the record holds them; normalisation
happens when tokens are computed, in one place for every source.

A :class:`Demographics` never prints its values: ``repr`` names only the fields that are present, so a
stray log line or traceback cannot carry a name or a date of birth off the node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from common.linkage.national_id import CN_RESIDENT_ID_SYSTEMS, normalise_resident_id
from common.linkage.normalise import COMPOUND_SURNAMES, fold, has_han, split_street_line

__all__ = ["CN_RESIDENT_ID_SYSTEM", "Demographics", "from_fhir_patient"]

#: The system :func:`from_fhir_patient` records for an identifier typed as a Chinese national id.
CN_RESIDENT_ID_SYSTEM = "urn:medfed:id:cn-resident"

_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
# v2-0203 identifier types that name a national person identifier, best first. NN<country> is
# "national person identifier" of that ISO 3166 country; NI "national unique individual identifier";
# SS "social security number".
_NATIONAL_TYPES = ("NNCHN", "NI", "SS")
_NAME_USE_RANK = {"official": 0, "usual": 1, None: 2, "nickname": 3, "temp": 4, "anonymous": 5, "old": 6, "maiden": 7}
_ADDRESS_USE_RANK = {"home": 0, None: 1, "temp": 2, "billing": 3, "work": 4, "old": 5}


@dataclass(frozen=True, slots=True)
class Demographics:
    """One patient's identifying facts as recorded (not yet normalised); any of them may be missing."""

    given: str | None = None
    family: str | None = None
    birth_date: str | None = None
    sex: str | None = None
    postcode: str | None = None
    street_number: str | None = None
    street: str | None = None
    address_line2: str | None = None
    locality: str | None = None
    state: str | None = None
    national_id: str | None = None
    national_id_system: str | None = None

    def __repr__(self) -> str:
        present = [field.name for field in fields(self) if getattr(self, field.name)]
        return f"Demographics(present={present})"

    @property
    def national_id_is_chinese(self) -> bool:
        """Whether the record says its national id is a Chinese resident ID number."""
        return self.national_id_system in CN_RESIDENT_ID_SYSTEMS


def _codes(concept: Any) -> set[str]:
    if not isinstance(concept, Mapping):
        return set()
    codings = concept.get("coding")
    if not isinstance(codings, list):
        return set()
    return {
        coding["code"]
        for coding in codings
        if isinstance(coding, Mapping)
        and isinstance(coding.get("code"), str)
        and coding.get("system") in (None, _V2_0203)
    }


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _is_current(element: Mapping[str, Any]) -> bool:
    period = element.get("period")
    return not (isinstance(period, Mapping) and period.get("end"))


def _pick(elements: Any, rank: Mapping[str | None, int]) -> list[Mapping[str, Any]]:
    if not isinstance(elements, list):
        return []
    usable = [element for element in elements if isinstance(element, Mapping)]
    return sorted(usable, key=lambda element: (not _is_current(element), rank.get(element.get("use"), 8)))


def _split_han_text(text: str) -> tuple[str | None, str | None]:
    """Family and given name of a Han name written as one string (``张伟``; compound surnames known)."""
    han = "".join(text.split())
    simplified = fold(han)
    if len(han) > 2 and simplified[:2] in COMPOUND_SURNAMES:
        return han[:2], han[2:]
    if len(han) < 2:
        return None, han or None
    return han[0], han[1:]


def _name(resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(given, family)`` of the best name: one written in Han characters first, then by ``use``."""
    names = _pick(resource.get("name"), _NAME_USE_RANK)
    candidates: list[tuple[str | None, str | None]] = []
    for name in names:
        family = name.get("family") if isinstance(name.get("family"), str) else None
        givens = _strings(name.get("given"))
        given = givens[0] if givens else None
        text = name.get("text") if isinstance(name.get("text"), str) else None
        if family is None and given is None and text and has_han(text):
            family, given = _split_han_text(text)
        if family is None and given is None:
            continue
        candidates.append((given, family))
    for given, family in candidates:
        if has_han((given or "") + (family or "")):
            return given, family
    return candidates[0] if candidates else (None, None)


def _national_id(resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(value, system)`` of the best national identifier; Chinese resident numbers first."""
    best: tuple[int, str, str | None] | None = None
    for identifier in _pick(resource.get("identifier"), {"official": 0, "usual": 1, None: 2}):
        value = identifier.get("value")
        if not isinstance(value, str) or not value.strip():
            continue
        system = identifier.get("system") if isinstance(identifier.get("system"), str) else None
        codes = _codes(identifier.get("type"))
        if system in CN_RESIDENT_ID_SYSTEMS or "NNCHN" in codes:
            rank, system = 0, CN_RESIDENT_ID_SYSTEM
        elif any(code in codes for code in _NATIONAL_TYPES) or any(code.startswith("NN") for code in codes):
            rank = 1 + min((_NATIONAL_TYPES.index(code) for code in codes if code in _NATIONAL_TYPES), default=0)
        elif normalise_resident_id(value) is not None:
            rank, system = 0, CN_RESIDENT_ID_SYSTEM
        else:
            continue
        if best is None or rank < best[0]:
            best = (rank, value, system)
    return (best[1], best[2]) if best else (None, None)


def from_fhir_patient(resource: Mapping[str, Any]) -> Demographics:
    """The :class:`Demographics` of a FHIR R4 ``Patient`` resource (a parsed JSON object).

    Name: one written in Han characters if there is one (its pinyin is derived), else the current
    ``official``, then ``usual`` name; its first given name. Address: the current ``home`` address; its
    first line split into house number and street, its second line kept as ``address_line2``. National
    id: an identifier typed ``NNCHN`` (or a valid resident ID number), ``NI`` or ``SS``.
    """
    given, family = _name(resource)
    birth = resource.get("birthDate")
    gender = resource.get("gender")
    street_number = street = line2 = locality = state = postcode = None
    addresses = _pick(resource.get("address"), _ADDRESS_USE_RANK)
    if addresses:
        address = addresses[0]
        lines: Sequence[str] = _strings(address.get("line"))
        if lines:
            street_number, street = split_street_line(lines[0])
        if len(lines) > 1:
            line2 = lines[1]
        locality = address.get("city") if isinstance(address.get("city"), str) else None
        state = address.get("state") if isinstance(address.get("state"), str) else None
        postcode = address.get("postalCode") if isinstance(address.get("postalCode"), str) else None
    national_id, system = _national_id(resource)
    return Demographics(
        given=given,
        family=family,
        birth_date=birth if isinstance(birth, str) else None,
        sex=gender if isinstance(gender, str) else None,
        postcode=postcode,
        street_number=street_number,
        street=street,
        address_line2=line2,
        locality=locality,
        state=state,
        national_id=national_id,
        national_id_system=system,
    )
