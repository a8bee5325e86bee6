"""Demographics from FHIR Patient resources, and their privacy-safe repr."""

from __future__ import annotations

from typing import Any

from common.linkage.demographics import CN_RESIDENT_ID_SYSTEM, Demographics, from_fhir_patient

_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _patient(**extra: Any) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [
            {"type": {"coding": [{"system": _V2_0203, "code": "MR"}]}, "system": "urn:site:mrn", "value": "0042"},
            {
                "use": "official",
                "type": {"coding": [{"system": _V2_0203, "code": "SS"}]},
                "system": "urn:oid:2.16.840.1.113883.4.1",
                "value": "900-12-3456",
            },
        ],
        "name": [
            {"use": "old", "family": "Smith", "given": ["Jane"]},
            {"use": "official", "family": "Jones", "given": ["Jane", "Anne"]},
        ],
        "gender": "female",
        "birthDate": "1970-04-01",
        "address": [
            {"use": "old", "line": ["1 Old Road"], "city": "Oldtown", "postalCode": "1111"},
            {
                "use": "home",
                "line": ["12 Pinkerton Cct", "Bega Flats"],
                "city": "Richlands",
                "state": "VIC",
                "postalCode": "4560",
            },
        ],
    }
    patient.update(extra)
    return patient


def test_a_fhir_patient_gives_its_current_official_name_home_address_and_national_id() -> None:
    """The official name, first given name, home address (line split) and SS identifier are read."""
    demographics = from_fhir_patient(_patient())
    assert demographics == Demographics(
        given="Jane",
        family="Jones",
        birth_date="1970-04-01",
        sex="female",
        postcode="4560",
        street_number="12",
        street="pinkerton cct",
        address_line2="Bega Flats",
        locality="Richlands",
        state="VIC",
        national_id="900-12-3456",
        national_id_system="urn:oid:2.16.840.1.113883.4.1",
    )


def test_a_name_in_han_characters_is_preferred_to_its_pinyin() -> None:
    """When a Patient carries a pinyin and a Han name, the Han one is used (its pinyin is derived)."""
    names = [
        {"use": "official", "family": "Zhang", "given": ["Wei"]},
        {"use": "official", "text": "张伟", "family": "张", "given": ["伟"]},
    ]
    demographics = from_fhir_patient(_patient(name=names))
    assert (demographics.family, demographics.given) == ("张", "伟")


def test_a_han_name_given_only_as_text_is_split_with_compound_family_names() -> None:
    """欧阳娜娜 as text is family 欧阳 and given 娜娜; 李明 is 李 and 明."""
    assert from_fhir_patient(_patient(name=[{"text": "欧阳娜娜"}])).family == "欧阳"
    demographics = from_fhir_patient(_patient(name=[{"text": "李明"}]))
    assert (demographics.family, demographics.given) == ("李", "明")


def test_a_chinese_national_id_type_marks_the_resident_id_system() -> None:
    """An identifier typed NNCHN is read as a Chinese resident ID number, before an SS number."""
    identifiers = [
        {"type": {"coding": [{"system": _V2_0203, "code": "SS"}]}, "value": "900-12-3456"},
        {"type": {"coding": [{"system": _V2_0203, "code": "NNCHN"}]}, "value": "11010519491231002X"},
    ]
    demographics = from_fhir_patient(_patient(identifier=identifiers))
    assert demographics.national_id == "11010519491231002X"
    assert demographics.national_id_system == CN_RESIDENT_ID_SYSTEM
    assert demographics.national_id_is_chinese


def test_an_untyped_valid_resident_id_is_recognised() -> None:
    """A resident ID number without a type is recognised by its check character."""
    demographics = from_fhir_patient(_patient(identifier=[{"value": "440524188001010014"}]))
    assert demographics.national_id_system == CN_RESIDENT_ID_SYSTEM


def test_a_patient_without_demographics_gives_empty_demographics() -> None:
    """Missing or malformed elements are skipped, never an error."""
    demographics = from_fhir_patient({"resourceType": "Patient", "name": "oops", "address": [3], "identifier": {}})
    assert demographics == Demographics()


def test_demographics_repr_names_fields_but_never_values() -> None:
    """repr lists which fields are present and no name, date or number."""
    text = repr(from_fhir_patient(_patient()))
    assert "given" in text
    assert "Jane" not in text
    assert "1970" not in text
    assert "900" not in text
