"""Lean FHIR R4 (4.0.1) validation for the ingest path.

:func:`validate_resource` checks one parsed JSON resource. Nine types are checked in depth (see
:data:`VALIDATED_TYPES`): required elements (1..1, 1..*), codes with a *required* binding (status,
intent, gender, ...), primitive formats (``id``, ``date``, ``dateTime``, ``instant``, ``time``,
``code``; strings, booleans, integers and decimals as the JSON types R4 asks for), the shapes of
the common data types (CodeableConcept, Coding, Identifier, Period, Quantity, HumanName, ...),
choice elements (``value[x]``: at most one variant, exactly one where the element is required) and
references (``Type/id`` with a known R4 type, a conditional ``Type?query`` as transactions use, an
absolute URL, ``urn:uuid:``, ``urn:oid:`` or ``#contained``; where R4 restricts the target, the
type of a relative reference must be one of the targets). Every other R4 type gets only ``id``
and ``meta`` checked.

What is deliberately *not* checked: unknown elements (extensions, elements not modelled here, newer
profiles' content) are ignored, never rejected, and so is ``modifierExtension``; invariants
(``obs-6``, ``con-3``, ...); contained resources beyond their ``resourceType`` and ``id``; nesting of
extensions below two levels; value sets with weaker than required bindings.

Privacy: a submitted value can be patient data, so errors carry only *locations and rule names*
(``entry[3].resource.Observation.status: missing``). Hints are built from pydantic's ``loc`` and
``type`` only (never its message or ``str()``, which echo the input), each location part that could
come from the input must look like a FHIR element name, and the pydantic error is dropped before the
:class:`~common.errors.InputError` is raised so that no traceback chains it.

Speed: the models are ``TypedDict`` schemas built once at import and run by pydantic-core with
``extra`` keys ignored, so nothing is built beyond pydantic's own output dicts; patterns are
compiled Rust regexes (the reference target check is one regex per target set). The only Python on
the success path is the choice-element check (a set intersection per object that has ``[x]``
elements) and the required bindings on Condition and AllergyIntolerance status concepts. Only a
failure pays for building hints. About 8 µs for a typical Synthea Observation.

The module is longer than most because it holds one schema per validated type; splitting them
would scatter what R4 says about each type without making any part simpler.
"""

import functools
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, Required, get_args, get_origin

from annotated_types import Ge, Le, MinLen
from pydantic import (
    AfterValidator,
    GetCoreSchemaHandler,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic.types import AllowInfNan
from pydantic_core import CoreSchema, ErrorDetails, PydanticCustomError, core_schema
from typing_extensions import TypedDict, is_typeddict

from common.errors import ErrorCode, InputError
from node.fhir.resource_types import R4_RESOURCE_TYPES

__all__ = ["VALIDATED_TYPES", "validate_resource"]

# --- primitive types (R4 datatypes.html regexes, anchored; pydantic-core runs them in Rust) -------

_ID_CORE = r"[A-Za-z0-9\-.]{1,64}"
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH = r"(0[1-9]|1[0-2])"
_DAY = r"(0[1-9]|[1-2][0-9]|3[0-1])"
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


def _pattern(core: str) -> StringConstraints:
    """A strict string that must match ``core`` as a whole."""
    return StringConstraints(strict=True, pattern=f"^(?:{core})$")


Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
Decimal = Annotated[float, Strict(), AllowInfNan(False)]
Integer = Annotated[int, Strict(), Ge(_INT32_MIN), Le(_INT32_MAX)]
PositiveInt = Annotated[int, Strict(), Ge(1), Le(_INT32_MAX)]
UnsignedInt = Annotated[int, Strict(), Ge(0), Le(_INT32_MAX)]
Id = Annotated[str, _pattern(_ID_CORE)]
Code = Annotated[str, _pattern(r"[^\s]+(\s[^\s]+)*")]
# uri, url and canonical: R4's regex is only ``\S*``; a regex per Coding.system is not worth it.
Uri = Str
Date = Annotated[str, _pattern(rf"{_YEAR}(-{_MONTH}(-{_DAY})?)?")]
DateTime = Annotated[str, _pattern(rf"{_YEAR}(-{_MONTH}(-{_DAY}(T{_CLOCK}{_ZONE})?)?)?")]
Instant = Annotated[str, _pattern(rf"{_YEAR}-{_MONTH}-{_DAY}T{_CLOCK}{_ZONE}")]
Time = Annotated[str, _pattern(_CLOCK)]

_ID_RE = re.compile(_ID_CORE)

# --- references -----------------------------------------------------------------------------------

_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"


def _reference_core(types: Iterable[str]) -> str:
    """The regex (unanchored) for Reference.reference whose relative form names one of ``types``."""
    alternation = "|".join(sorted(types))
    return (
        rf"(?:{alternation})(?:/{_ID_CORE}(?:/_history/{_ID_CORE})?|\?\S+)"
        r"|[A-Za-z][A-Za-z0-9+.\-]*://\S+"
        rf"|urn:uuid:{_UUID}"
        r"|urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+"
        rf"|#(?:{_ID_CORE})?"
    )


_ANY_REFERENCE_CORE = _reference_core(R4_RESOURCE_TYPES)
_ANY_REFERENCE_RE = re.compile(_ANY_REFERENCE_CORE)
# Every pattern used for a Reference.reference; a mismatch against one of them is a reference error.
_REFERENCE_PATTERNS: set[str] = {f"^(?:{_ANY_REFERENCE_CORE})$"}


class _RefIdentifier(TypedDict, total=False):
    """Identifier inside a Reference (no ``assigner``, which keeps the schemas free of cycles)."""

    use: Literal["usual", "official", "temp", "secondary", "old"]
    system: Uri
    value: Str


class Reference(TypedDict, total=False):
    """Reference to any R4 type."""

    reference: Annotated[str, _pattern(_ANY_REFERENCE_CORE)]
    type: Uri
    identifier: _RefIdentifier
    display: Str


_make_typed_dict: Any = TypedDict  # called with a runtime dict, which mypy cannot type


@functools.cache
def _reference_to(targets: tuple[str, ...]) -> Any:
    """A Reference schema whose relative reference must name one of ``targets``."""
    unknown = set(targets) - R4_RESOURCE_TYPES
    if unknown:
        raise ValueError(f"not R4 resource types: {sorted(unknown)}")
    pattern = _pattern(_reference_core(targets))
    if pattern.pattern is not None:
        _REFERENCE_PATTERNS.add(str(pattern.pattern))
    return _make_typed_dict(
        "Reference_" + "_".join(targets),
        {
            "reference": Annotated[str, pattern],
            "type": Uri,
            "identifier": _RefIdentifier,
            "display": Str,
        },
        total=False,
    )


class To:
    """``Annotated[Reference, To("Patient", "Group")]``: a reference R4 restricts to these targets."""

    __slots__ = ("targets",)

    def __init__(self, *targets: str) -> None:
        self.targets = targets

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return handler.generate_schema(_reference_to(self.targets))


# --- choice elements and CodeableConcept bindings -------------------------------------------------


class Choices:
    """``Annotated[Schema, Choices(Schema, "value")]``: check the ``[x]`` elements of ``Schema``.

    At most one variant of each element may be present, and exactly one of each ``required`` one.
    The variants are the schema's keys that continue the element's name with a capital letter
    (``value`` -> ``valueQuantity``, ``valueString``, ...); a primitive variant present only as
    ``_valueString`` (extensions without a value) counts as present.
    """

    __slots__ = ("_all_keys", "_group", "_must")

    def __init__(self, schema: Any, *elements: str, required: tuple[str, ...] = ()) -> None:
        keys = schema.__required_keys__ | schema.__optional_keys__
        group_of: dict[str, str] = {}
        for element in (*elements, *required):
            n = len(element)
            variants = [k for k in keys if k.startswith(element) and len(k) > n and k[n].isupper()]
            if not variants:
                raise ValueError(f"{element}[x] has no variants")
            for variant in variants:
                group_of[variant] = group_of["_" + variant] = f"{element}[x]"
        self._all_keys = frozenset(group_of)
        self._group = group_of.__getitem__
        self._must = frozenset(f"{element}[x]" for element in required)

    def problems(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        """``(element, error type)`` for each choice element of ``data`` that breaks the rules."""
        hits = self._all_keys.intersection(data)
        groups = set(map(self._group, hits))
        if len(groups) == len(hits) and self._must <= groups:
            return []
        found: list[tuple[str, str]] = []
        seen: dict[str, str] = {}
        for key in sorted(hits):
            element, variant = self._group(key), key.lstrip("_")
            if seen.setdefault(element, variant) != variant and (element, "fhir_choice_multiple") not in found:
                found.append((element, "fhir_choice_multiple"))
        found.extend((element, "fhir_choice_missing") for element in sorted(self._must - groups))
        return found

    def _check(self, data: Any) -> Any:
        if isinstance(data, dict):
            found = self.problems(data)
            if found:
                element, error_type = found[0]
                raise PydanticCustomError(error_type, "{element}", {"element": element})
        return data

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self._check, handler(source))


def _bound(system: str, codes: frozenset[str]) -> AfterValidator:
    """Required binding on a CodeableConcept: every coding from ``system`` has a code in ``codes``."""

    def check(concept: Any) -> Any:
        for coding in concept.get("coding", ()):
            if coding.get("system") == system and "code" in coding and coding["code"] not in codes:
                raise PydanticCustomError("fhir_value_set", "not in value set")
        return concept

    return AfterValidator(check)


# --- general-purpose data types --------------------------------------------------------------------


class Coding(TypedDict, total=False):
    system: Uri
    version: Str
    code: Code
    display: Str
    userSelected: Bool


class CodeableConcept(TypedDict, total=False):
    coding: list[Coding]
    text: Str


class Period(TypedDict, total=False):
    start: DateTime
    end: DateTime


class Identifier(TypedDict, total=False):
    use: Literal["usual", "official", "temp", "secondary", "old"]
    type: CodeableConcept
    system: Uri
    value: Str
    period: Period
    assigner: Annotated[Reference, To("Organization")]


class Quantity(TypedDict, total=False):
    """Quantity, and also SimpleQuantity, Age, Duration, Count, Distance and Money-like uses."""

    value: Decimal
    comparator: Literal["<", "<=", ">=", ">"]
    unit: Str
    system: Uri
    code: Code


class Range(TypedDict, total=False):
    low: Quantity
    high: Quantity


class Ratio(TypedDict, total=False):
    numerator: Quantity
    denominator: Quantity


class SampledData(TypedDict, total=False):
    origin: Required[Quantity]
    period: Required[Decimal]
    factor: Decimal
    lowerLimit: Decimal
    upperLimit: Decimal
    dimensions: Required[PositiveInt]
    data: Str


class HumanName(TypedDict, total=False):
    use: Literal["usual", "official", "temp", "nickname", "anonymous", "old", "maiden"]
    text: Str
    family: Str
    given: list[Str]
    prefix: list[Str]
    suffix: list[Str]
    period: Period


class ContactPoint(TypedDict, total=False):
    system: Literal["phone", "fax", "email", "pager", "url", "sms", "other"]
    value: Str
    use: Literal["home", "work", "temp", "old", "mobile"]
    rank: PositiveInt
    period: Period


class Address(TypedDict, total=False):
    use: Literal["home", "work", "temp", "old", "billing"]
    type: Literal["postal", "physical", "both"]
    text: Str
    line: list[Str]
    city: Str
    district: Str
    state: Str
    postalCode: Str
    country: Str
    period: Period


class Attachment(TypedDict, total=False):
    contentType: Code
    language: Code
    data: Str
    url: Uri
    size: UnsignedInt
    hash: Str
    title: Str
    creation: DateTime


class _Annotation(TypedDict, total=False):
    authorReference: Annotated[Reference, To("Practitioner", "Patient", "RelatedPerson", "Organization")]
    authorString: Str
    time: DateTime
    text: Required[Str]


Annotation = Annotated[_Annotation, Choices(_Annotation, "author")]

UnitsOfTime = Literal["s", "min", "h", "d", "wk", "mo", "a"]


class _TimingRepeat(TypedDict, total=False):
    boundsDuration: Quantity
    boundsRange: Range
    boundsPeriod: Period
    count: PositiveInt
    countMax: PositiveInt
    duration: Decimal
    durationMax: Decimal
    durationUnit: UnitsOfTime
    frequency: PositiveInt
    frequencyMax: PositiveInt
    period: Decimal
    periodMax: Decimal
    periodUnit: UnitsOfTime
    dayOfWeek: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]]
    timeOfDay: list[Time]
    when: list[Code]
    offset: UnsignedInt


class Timing(TypedDict, total=False):
    event: list[DateTime]
    repeat: Annotated[_TimingRepeat, Choices(_TimingRepeat, "bounds")]
    code: CodeableConcept


class Meta(TypedDict, total=False):
    versionId: Id
    lastUpdated: Instant
    source: Uri
    profile: list[Uri]
    security: list[Coding]
    tag: list[Coding]


class Narrative(TypedDict, total=False):
    status: Required[Literal["generated", "extensions", "additional", "empty"]]
    div: Required[Str]


class _NestedExtension(TypedDict, total=False):
    """An extension inside an extension; deeper levels are not looked at."""

    url: Required[Uri]


class Extension(TypedDict, total=False):
    url: Required[Uri]
    extension: list[_NestedExtension]


def _known_type(value: str) -> str:
    if value not in R4_RESOURCE_TYPES:
        raise PydanticCustomError("fhir_unknown_type", "unknown")
    return value


class _Contained(TypedDict, total=False):
    resourceType: Required[Annotated[str, Strict(), AfterValidator(_known_type)]]
    id: Id
    meta: Meta


class _Element(TypedDict, total=False):
    """Backbone elements: what every nested element of a resource may carry."""

    extension: list[Extension]
    modifierExtension: list[Extension]


class _DomainResource(TypedDict, total=False):
    id: Id
    meta: Meta
    implicitRules: Uri
    language: Code
    text: Narrative
    contained: list[_Contained]
    extension: list[Extension]
    modifierExtension: list[Extension]
    identifier: list[Identifier]


class _DoseAndRate(_Element, total=False):
    type: CodeableConcept
    doseRange: Range
    doseQuantity: Quantity
    rateRatio: Ratio
    rateRange: Range
    rateQuantity: Quantity


class _Dosage(_Element, total=False):
    sequence: Integer
    text: Str
    additionalInstruction: list[CodeableConcept]
    patientInstruction: Str
    timing: Timing
    asNeededBoolean: Bool
    asNeededCodeableConcept: CodeableConcept
    site: CodeableConcept
    route: CodeableConcept
    method: CodeableConcept
    doseAndRate: list[Annotated[_DoseAndRate, Choices(_DoseAndRate, "dose", "rate")]]
    maxDosePerPeriod: Ratio
    maxDosePerAdministration: Quantity
    maxDosePerLifetime: Quantity


Dosage = Annotated[_Dosage, Choices(_Dosage, "asNeeded")]

# --- Patient ----------------------------------------------------------------------------------------

AdministrativeGender = Literal["male", "female", "other", "unknown"]


class _PatientContact(_Element, total=False):
    relationship: list[CodeableConcept]
    name: HumanName
    telecom: list[ContactPoint]
    address: Address
    gender: AdministrativeGender
    organization: Annotated[Reference, To("Organization")]
    period: Period


class _PatientCommunication(_Element, total=False):
    language: Required[CodeableConcept]
    preferred: Bool


class _PatientLink(_Element, total=False):
    other: Required[Annotated[Reference, To("Patient", "RelatedPerson")]]
    type: Required[Literal["replaced-by", "replaces", "refer", "seealso"]]


class Patient(_DomainResource, total=False):
    active: Bool
    name: list[HumanName]
    telecom: list[ContactPoint]
    gender: AdministrativeGender
    birthDate: Date
    deceasedBoolean: Bool
    deceasedDateTime: DateTime
    address: list[Address]
    maritalStatus: CodeableConcept
    multipleBirthBoolean: Bool
    multipleBirthInteger: Integer
    photo: list[Attachment]
    contact: list[_PatientContact]
    communication: list[_PatientCommunication]
    generalPractitioner: list[Annotated[Reference, To("Organization", "Practitioner", "PractitionerRole")]]
    managingOrganization: Annotated[Reference, To("Organization")]
    link: list[_PatientLink]


# --- Encounter ----------------------------------------------------------------------------------------

EncounterStatus = Literal[
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
]

_EncounterClass = TypedDict(
    "_EncounterClass",
    {
        "extension": list[Extension],
        "modifierExtension": list[Extension],
        "class": Required[Coding],
        "period": Required[Period],
    },
    total=False,
)


class _EncounterStatusHistory(_Element, total=False):
    status: Required[EncounterStatus]
    period: Required[Period]


class _EncounterParticipant(_Element, total=False):
    type: list[CodeableConcept]
    period: Period
    individual: Annotated[Reference, To("Practitioner", "PractitionerRole", "RelatedPerson")]


class _EncounterDiagnosis(_Element, total=False):
    condition: Required[Annotated[Reference, To("Condition", "Procedure")]]
    use: CodeableConcept
    rank: PositiveInt


class _EncounterHospitalization(_Element, total=False):
    preAdmissionIdentifier: Identifier
    origin: Annotated[Reference, To("Location", "Organization")]
    admitSource: CodeableConcept
    reAdmission: CodeableConcept
    dietPreference: list[CodeableConcept]
    specialCourtesy: list[CodeableConcept]
    specialArrangement: list[CodeableConcept]
    destination: Annotated[Reference, To("Location", "Organization")]
    dischargeDisposition: CodeableConcept


class _EncounterLocation(_Element, total=False):
    location: Required[Annotated[Reference, To("Location")]]
    status: Literal["planned", "active", "reserved", "completed"]
    physicalType: CodeableConcept
    period: Period


_EncounterFields = TypedDict(
    "_EncounterFields",
    {
        "status": Required[EncounterStatus],
        "statusHistory": list[_EncounterStatusHistory],
        "class": Required[Coding],
        "classHistory": list[_EncounterClass],
        "type": list[CodeableConcept],
        "serviceType": CodeableConcept,
        "priority": CodeableConcept,
        "subject": Annotated[Reference, To("Patient", "Group")],
        "episodeOfCare": list[Annotated[Reference, To("EpisodeOfCare")]],
        "basedOn": list[Annotated[Reference, To("ServiceRequest")]],
        "participant": list[_EncounterParticipant],
        "appointment": list[Annotated[Reference, To("Appointment")]],
        "period": Period,
        "length": Quantity,
        "reasonCode": list[CodeableConcept],
        "reasonReference": list[
            Annotated[Reference, To("Condition", "Procedure", "Observation", "ImmunizationRecommendation")]
        ],
        "diagnosis": list[_EncounterDiagnosis],
        "account": list[Annotated[Reference, To("Account")]],
        "hospitalization": _EncounterHospitalization,
        "location": list[_EncounterLocation],
        "serviceProvider": Annotated[Reference, To("Organization")],
        "partOf": Annotated[Reference, To("Encounter")],
    },
    total=False,
)


class Encounter(_DomainResource, _EncounterFields, total=False):
    """Encounter; its elements are above because ``class`` needs the functional syntax."""


# --- Observation ----------------------------------------------------------------------------------


class _ObservationReferenceRange(_Element, total=False):
    low: Quantity
    high: Quantity
    type: CodeableConcept
    appliesTo: list[CodeableConcept]
    age: Range
    text: Str


class _ObservationValue(TypedDict, total=False):
    valueQuantity: Quantity
    valueCodeableConcept: CodeableConcept
    valueString: Str
    valueBoolean: Bool
    valueInteger: Integer
    valueRange: Range
    valueRatio: Ratio
    valueSampledData: SampledData
    valueTime: Time
    valueDateTime: DateTime
    valuePeriod: Period


class _ObservationComponent(_Element, _ObservationValue, total=False):
    code: Required[CodeableConcept]
    dataAbsentReason: CodeableConcept
    interpretation: list[CodeableConcept]
    referenceRange: list[_ObservationReferenceRange]


class Observation(_DomainResource, _ObservationValue, total=False):
    basedOn: list[
        Annotated[
            Reference,
            To(
                "CarePlan",
                "DeviceRequest",
                "ImmunizationRecommendation",
                "MedicationRequest",
                "NutritionOrder",
                "ServiceRequest",
            ),
        ]
    ]
    partOf: list[
        Annotated[
            Reference,
            To(
                "MedicationAdministration",
                "MedicationDispense",
                "MedicationStatement",
                "Procedure",
                "Immunization",
                "ImagingStudy",
            ),
        ]
    ]
    status: Required[
        Literal[
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        ]
    ]
    category: list[CodeableConcept]
    code: Required[CodeableConcept]
    subject: Annotated[Reference, To("Patient", "Group", "Device", "Location")]
    focus: list[Reference]
    encounter: Annotated[Reference, To("Encounter")]
    effectiveDateTime: DateTime
    effectivePeriod: Period
    effectiveTiming: Timing
    effectiveInstant: Instant
    issued: Instant
    performer: list[
        Annotated[
            Reference,
            To("Practitioner", "PractitionerRole", "Organization", "CareTeam", "Patient", "RelatedPerson"),
        ]
    ]
    dataAbsentReason: CodeableConcept
    interpretation: list[CodeableConcept]
    note: list[Annotation]
    bodySite: CodeableConcept
    method: CodeableConcept
    specimen: Annotated[Reference, To("Specimen")]
    device: Annotated[Reference, To("Device", "DeviceMetric")]
    referenceRange: list[_ObservationReferenceRange]
    hasMember: list[Annotated[Reference, To("Observation", "QuestionnaireResponse", "MolecularSequence")]]
    derivedFrom: list[
        Annotated[
            Reference,
            To(
                "DocumentReference",
                "ImagingStudy",
                "Media",
                "QuestionnaireResponse",
                "Observation",
                "MolecularSequence",
            ),
        ]
    ]
    component: list[Annotated[_ObservationComponent, Choices(_ObservationComponent, "value")]]


# --- Condition --------------------------------------------------------------------------------------

_ClinicalActor = To("Practitioner", "PractitionerRole", "Patient", "RelatedPerson")


class _ConditionStage(_Element, total=False):
    summary: CodeableConcept
    assessment: list[Annotated[Reference, To("ClinicalImpression", "DiagnosticReport", "Observation")]]
    type: CodeableConcept


class _ConditionEvidence(_Element, total=False):
    code: list[CodeableConcept]
    detail: list[Reference]


class Condition(_DomainResource, total=False):
    clinicalStatus: Annotated[
        CodeableConcept,
        _bound(
            "http://terminology.hl7.org/CodeSystem/condition-clinical",
            frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"}),
        ),
    ]
    verificationStatus: Annotated[
        CodeableConcept,
        _bound(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            frozenset({"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}),
        ),
    ]
    category: list[CodeableConcept]
    severity: CodeableConcept
    code: CodeableConcept
    bodySite: list[CodeableConcept]
    subject: Required[Annotated[Reference, To("Patient", "Group")]]
    encounter: Annotated[Reference, To("Encounter")]
    onsetDateTime: DateTime
    onsetAge: Quantity
    onsetPeriod: Period
    onsetRange: Range
    onsetString: Str
    abatementDateTime: DateTime
    abatementAge: Quantity
    abatementPeriod: Period
    abatementRange: Range
    abatementString: Str
    recordedDate: DateTime
    recorder: Annotated[Reference, _ClinicalActor]
    asserter: Annotated[Reference, _ClinicalActor]
    stage: list[_ConditionStage]
    evidence: list[_ConditionEvidence]
    note: list[Annotation]


# --- MedicationRequest --------------------------------------------------------------------------------


class _DispenseInitialFill(_Element, total=False):
    quantity: Quantity
    duration: Quantity


class _MedicationRequestDispense(_Element, total=False):
    initialFill: _DispenseInitialFill
    dispenseInterval: Quantity
    validityPeriod: Period
    numberOfRepeatsAllowed: UnsignedInt
    quantity: Quantity
    expectedSupplyDuration: Quantity
    performer: Annotated[Reference, To("Organization")]


class _MedicationRequestSubstitution(_Element, total=False):
    allowedBoolean: Bool
    allowedCodeableConcept: CodeableConcept
    reason: CodeableConcept


class MedicationRequest(_DomainResource, total=False):
    status: Required[
        Literal["active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft", "unknown"]
    ]
    statusReason: CodeableConcept
    intent: Required[
        Literal[
            "proposal",
            "plan",
            "order",
            "original-order",
            "reflex-order",
            "filler-order",
            "instance-order",
            "option",
        ]
    ]
    category: list[CodeableConcept]
    priority: Literal["routine", "urgent", "asap", "stat"]
    doNotPerform: Bool
    reportedBoolean: Bool
    reportedReference: Annotated[
        Reference, To("Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Organization")
    ]
    medicationCodeableConcept: CodeableConcept
    medicationReference: Annotated[Reference, To("Medication")]
    subject: Required[Annotated[Reference, To("Patient", "Group")]]
    encounter: Annotated[Reference, To("Encounter")]
    supportingInformation: list[Reference]
    authoredOn: DateTime
    requester: Annotated[
        Reference,
        To("Practitioner", "PractitionerRole", "Organization", "Patient", "RelatedPerson", "Device"),
    ]
    performer: Annotated[
        Reference,
        To(
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "Patient",
            "Device",
            "RelatedPerson",
            "CareTeam",
        ),
    ]
    performerType: CodeableConcept
    recorder: Annotated[Reference, To("Practitioner", "PractitionerRole")]
    reasonCode: list[CodeableConcept]
    reasonReference: list[Annotated[Reference, To("Condition", "Observation")]]
    instantiatesCanonical: list[Uri]
    instantiatesUri: list[Uri]
    basedOn: list[
        Annotated[Reference, To("CarePlan", "MedicationRequest", "ServiceRequest", "ImmunizationRecommendation")]
    ]
    groupIdentifier: Identifier
    courseOfTherapyType: CodeableConcept
    insurance: list[Annotated[Reference, To("Coverage", "ClaimResponse")]]
    note: list[Annotation]
    dosageInstruction: list[Dosage]
    dispenseRequest: _MedicationRequestDispense
    substitution: Annotated[
        _MedicationRequestSubstitution,
        Choices(_MedicationRequestSubstitution, required=("allowed",)),
    ]
    priorPrescription: Annotated[Reference, To("MedicationRequest")]
    detectedIssue: list[Annotated[Reference, To("DetectedIssue")]]
    eventHistory: list[Annotated[Reference, To("Provenance")]]


# --- Procedure ----------------------------------------------------------------------------------------


class _ProcedurePerformer(_Element, total=False):
    function: CodeableConcept
    actor: Required[
        Annotated[
            Reference,
            To("Practitioner", "PractitionerRole", "Organization", "Patient", "RelatedPerson", "Device"),
        ]
    ]
    onBehalfOf: Annotated[Reference, To("Organization")]


class _ProcedureFocalDevice(_Element, total=False):
    action: CodeableConcept
    manipulated: Required[Annotated[Reference, To("Device")]]


class Procedure(_DomainResource, total=False):
    instantiatesCanonical: list[Uri]
    instantiatesUri: list[Uri]
    basedOn: list[Annotated[Reference, To("CarePlan", "ServiceRequest")]]
    partOf: list[Annotated[Reference, To("Procedure", "Observation", "MedicationAdministration")]]
    status: Required[
        Literal[
            "preparation",
            "in-progress",
            "not-done",
            "on-hold",
            "stopped",
            "completed",
            "entered-in-error",
            "unknown",
        ]
    ]
    statusReason: CodeableConcept
    category: CodeableConcept
    code: CodeableConcept
    subject: Required[Annotated[Reference, To("Patient", "Group")]]
    encounter: Annotated[Reference, To("Encounter")]
    performedDateTime: DateTime
    performedPeriod: Period
    performedString: Str
    performedAge: Quantity
    performedRange: Range
    recorder: Annotated[Reference, _ClinicalActor]
    asserter: Annotated[Reference, _ClinicalActor]
    performer: list[_ProcedurePerformer]
    location: Annotated[Reference, To("Location")]
    reasonCode: list[CodeableConcept]
    reasonReference: list[
        Annotated[
            Reference,
            To("Condition", "Observation", "Procedure", "DiagnosticReport", "DocumentReference"),
        ]
    ]
    bodySite: list[CodeableConcept]
    outcome: CodeableConcept
    report: list[Annotated[Reference, To("DiagnosticReport", "DocumentReference", "Composition")]]
    complication: list[CodeableConcept]
    complicationDetail: list[Annotated[Reference, To("Condition")]]
    followUp: list[CodeableConcept]
    note: list[Annotation]
    focalDevice: list[_ProcedureFocalDevice]
    usedReference: list[Annotated[Reference, To("Device", "Medication", "Substance")]]
    usedCode: list[CodeableConcept]


# --- DiagnosticReport ---------------------------------------------------------------------------------

_ReportPerformer = To("Practitioner", "PractitionerRole", "Organization", "CareTeam")


class _DiagnosticReportMedia(_Element, total=False):
    comment: Str
    link: Required[Annotated[Reference, To("Media")]]


class DiagnosticReport(_DomainResource, total=False):
    basedOn: list[
        Annotated[
            Reference,
            To(
                "CarePlan",
                "ImmunizationRecommendation",
                "MedicationRequest",
                "NutritionOrder",
                "ServiceRequest",
            ),
        ]
    ]
    status: Required[
        Literal[
            "registered",
            "partial",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "appended",
            "cancelled",
            "entered-in-error",
            "unknown",
        ]
    ]
    category: list[CodeableConcept]
    code: Required[CodeableConcept]
    subject: Annotated[Reference, To("Patient", "Group", "Device", "Location")]
    encounter: Annotated[Reference, To("Encounter")]
    effectiveDateTime: DateTime
    effectivePeriod: Period
    issued: Instant
    performer: list[Annotated[Reference, _ReportPerformer]]
    resultsInterpreter: list[Annotated[Reference, _ReportPerformer]]
    specimen: list[Annotated[Reference, To("Specimen")]]
    result: list[Annotated[Reference, To("Observation")]]
    imagingStudy: list[Annotated[Reference, To("ImagingStudy")]]
    media: list[_DiagnosticReportMedia]
    conclusion: Str
    conclusionCode: list[CodeableConcept]
    presentedForm: list[Attachment]


# --- AllergyIntolerance -------------------------------------------------------------------------------


class _AllergyReaction(_Element, total=False):
    substance: CodeableConcept
    manifestation: Required[Annotated[list[CodeableConcept], MinLen(1)]]
    description: Str
    onset: DateTime
    severity: Literal["mild", "moderate", "severe"]
    exposureRoute: CodeableConcept
    note: list[Annotation]


class AllergyIntolerance(_DomainResource, total=False):
    clinicalStatus: Annotated[
        CodeableConcept,
        _bound(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            frozenset({"active", "inactive", "resolved"}),
        ),
    ]
    verificationStatus: Annotated[
        CodeableConcept,
        _bound(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            frozenset({"unconfirmed", "confirmed", "refuted", "entered-in-error"}),
        ),
    ]
    type: Literal["allergy", "intolerance"]
    category: list[Literal["food", "medication", "environment", "biologic"]]
    criticality: Literal["low", "high", "unable-to-assess"]
    code: CodeableConcept
    patient: Required[Annotated[Reference, To("Patient")]]
    encounter: Annotated[Reference, To("Encounter")]
    onsetDateTime: DateTime
    onsetAge: Quantity
    onsetPeriod: Period
    onsetRange: Range
    onsetString: Str
    recordedDate: DateTime
    recorder: Annotated[Reference, _ClinicalActor]
    asserter: Annotated[Reference, _ClinicalActor]
    lastOccurrence: DateTime
    note: list[Annotation]
    reaction: list[_AllergyReaction]


# --- Immunization -------------------------------------------------------------------------------------


class _ImmunizationPerformer(_Element, total=False):
    function: CodeableConcept
    actor: Required[Annotated[Reference, To("Practitioner", "PractitionerRole", "Organization")]]


class _ImmunizationEducation(_Element, total=False):
    documentType: Str
    reference: Uri
    publicationDate: DateTime
    presentationDate: DateTime


class _ImmunizationReaction(_Element, total=False):
    date: DateTime
    detail: Annotated[Reference, To("Observation")]
    reported: Bool


class _ImmunizationProtocolApplied(_Element, total=False):
    series: Str
    authority: Annotated[Reference, To("Organization")]
    targetDisease: list[CodeableConcept]
    doseNumberPositiveInt: PositiveInt
    doseNumberString: Str
    seriesDosesPositiveInt: PositiveInt
    seriesDosesString: Str


class Immunization(_DomainResource, total=False):
    status: Required[Literal["completed", "entered-in-error", "not-done"]]
    statusReason: CodeableConcept
    vaccineCode: Required[CodeableConcept]
    patient: Required[Annotated[Reference, To("Patient")]]
    encounter: Annotated[Reference, To("Encounter")]
    occurrenceDateTime: DateTime
    occurrenceString: Str
    recorded: DateTime
    primarySource: Bool
    reportOrigin: CodeableConcept
    location: Annotated[Reference, To("Location")]
    manufacturer: Annotated[Reference, To("Organization")]
    lotNumber: Str
    expirationDate: Date
    site: CodeableConcept
    route: CodeableConcept
    doseQuantity: Quantity
    performer: list[_ImmunizationPerformer]
    note: list[Annotation]
    reasonCode: list[CodeableConcept]
    reasonReference: list[Annotated[Reference, To("Condition", "Observation", "DiagnosticReport")]]
    isSubpotent: Bool
    subpotentReason: list[CodeableConcept]
    education: list[_ImmunizationEducation]
    programEligibility: list[CodeableConcept]
    fundingSource: CodeableConcept
    reaction: list[_ImmunizationReaction]
    protocolApplied: list[
        Annotated[
            _ImmunizationProtocolApplied,
            Choices(_ImmunizationProtocolApplied, "seriesDoses", required=("doseNumber",)),
        ]
    ]


# --- the validators, built once -------------------------------------------------------------------


def _compile(schema: Any) -> Callable[[Any], Any]:
    adapter: TypeAdapter[Any] = TypeAdapter(schema)
    return adapter.validator.validate_python


# The type's schema, and its own choice elements (checked outside pydantic, so that their problems
# are reported together with the others).
_VALIDATORS: dict[str, tuple[Callable[[Any], Any], Choices | None]] = {
    "Patient": (_compile(Patient), Choices(Patient, "deceased", "multipleBirth")),
    "Encounter": (_compile(Encounter), None),
    "Observation": (_compile(Observation), Choices(Observation, "effective", "value")),
    "Condition": (_compile(Condition), Choices(Condition, "onset", "abatement")),
    "MedicationRequest": (
        _compile(MedicationRequest),
        Choices(MedicationRequest, "reported", required=("medication",)),
    ),
    "Procedure": (_compile(Procedure), Choices(Procedure, "performed")),
    "DiagnosticReport": (_compile(DiagnosticReport), Choices(DiagnosticReport, "effective")),
    "AllergyIntolerance": (_compile(AllergyIntolerance), Choices(AllergyIntolerance, "onset")),
    "Immunization": (_compile(Immunization), Choices(Immunization, required=("occurrence",))),
}

VALIDATED_TYPES: frozenset[str] = frozenset(_VALIDATORS)

# --- errors: locations and rule names only ------------------------------------------------------------

_MAX_HINTS = 20
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}(?:\[x\])?")
_ABSENT = object()
_KINDS = {
    "missing": "missing",
    "fhir_choice_missing": "missing",
    "fhir_choice_multiple": "more than one variant",
    "fhir_value_set": "not in value set",
    "literal_error": "not in value set",
    "fhir_unknown_type": "unknown",
    "string_pattern_mismatch": "invalid format",
    "finite_number": "invalid format",
    "too_short": "empty",
    "string_too_short": "empty",
    "greater_than": "out of range",
    "greater_than_equal": "out of range",
    "less_than": "out of range",
    "less_than_equal": "out of range",
    "recursion_loop": "too deeply nested",
}
_CHOICE_ERRORS = frozenset({"fhir_choice_missing", "fhir_choice_multiple"})
# ``missing``, and a null inside a primitive array (valid FHIR JSON when the ``_name`` array carries
# extensions): see _excused.
_EXCUSABLE = frozenset({"missing", "string_type", "bool_type", "int_type", "float_type", "literal_error"})


def _walk(node: Any, loc: tuple[int | str, ...]) -> Any:
    """The submitted value at ``loc``, or ``_ABSENT``."""
    for part in loc:
        if isinstance(part, str):
            if not isinstance(node, dict) or part not in node:
                return _ABSENT
            node = node[part]
        else:
            if not isinstance(node, list) or not 0 <= part < len(node):
                return _ABSENT
            node = node[part]
    return node


def _is_primitive(annotation: Any) -> bool:
    while get_origin(annotation) in (Required, Annotated):
        annotation = get_args(annotation)[0]
    return not (is_typeddict(annotation) or get_origin(annotation) is list)


def _required_primitives(schemas: Iterable[Any]) -> frozenset[str]:
    """Names that are a required primitive somewhere and a required complex element nowhere."""
    primitive: set[str] = set()
    complex_: set[str] = set()
    for schema in schemas:
        for name in schema.__required_keys__:
            (primitive if _is_primitive(schema.__annotations__[name]) else complex_).add(name)
    return frozenset(primitive - complex_)


# A required primitive may be sent as ``"_status": {"extension": [...]}`` with no value.
_REQUIRED_PRIMITIVES = _required_primitives(
    v for v in tuple(globals().values()) if is_typeddict(v) and v.__module__ == __name__
)


def _excused(resource: dict[str, Any], loc: tuple[int | str, ...], kind: str) -> bool:
    """Whether an error is only the JSON form of a primitive that carries extensions but no value."""
    if kind == "missing":
        if not loc or loc[-1] not in _REQUIRED_PRIMITIVES:
            return False
        parent = _walk(resource, loc[:-1])
        return isinstance(parent, dict) and isinstance(parent.get(f"_{loc[-1]}"), dict)
    if len(loc) >= 2 and isinstance(loc[-1], int) and isinstance(loc[-2], str) and _walk(resource, loc) is None:
        parent = _walk(resource, loc[:-2])
        return isinstance(parent, dict) and isinstance(parent.get(f"_{loc[-2]}"), list)
    return False


def _path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append("." + (part if _NAME_RE.fullmatch(part) else "?"))
    return "".join(parts)


def _kind(error: ErrorDetails, resource: dict[str, Any]) -> str:
    etype = error["type"]
    ctx = error.get("ctx") or {}
    if etype == "string_pattern_mismatch" and ctx.get("pattern") in _REFERENCE_PATTERNS:
        value = _walk(resource, error["loc"])
        if isinstance(value, str) and _ANY_REFERENCE_RE.fullmatch(value):
            return "wrong reference target type"
        return "invalid reference"
    if etype in _KINDS:
        return _KINDS[etype]
    return "wrong type" if etype.endswith("_type") else "invalid"


def _hints(exc: ValidationError, resource: dict[str, Any], prefix: str) -> list[str]:
    hints: dict[str, None] = {}  # ordered and without repeats
    for error in exc.errors(include_url=False, include_context=True, include_input=False):
        etype, loc = error["type"], error["loc"]
        if etype in _EXCUSABLE and _excused(resource, loc, etype):
            continue
        path = _path(loc)
        if etype in _CHOICE_ERRORS:
            path += _path(((error.get("ctx") or {}).get("element", "?"),))
        hints[f"{prefix}{path}: {_kind(error, resource)}"] = None
    return list(hints)


def _check_other(resource: dict[str, Any], prefix: str) -> list[str]:
    """The checks for the R4 types without a schema here: ``id`` and ``meta`` only."""
    hints: list[str] = []
    if "id" in resource:
        rid = resource["id"]
        if not isinstance(rid, str):
            hints.append(f"{prefix}.id: wrong type")
        elif not _ID_RE.fullmatch(rid):
            hints.append(f"{prefix}.id: invalid format")
    if "meta" in resource and not isinstance(resource["meta"], dict):
        hints.append(f"{prefix}.meta: wrong type")
    return hints


def validate_resource(resource: dict[str, Any], *, location: str = "") -> None:
    """Check one parsed JSON resource against FHIR R4; return None when it is valid.

    ``location`` prefixes every hint and ends with a dot (``"entry[3].resource."``).

    Raises:
        InputError: ``UNKNOWN_RESOURCE_TYPE`` when ``resourceType`` is missing, not a string or not
            an R4 type; ``INVALID_RESOURCE`` with one hint per problem
            (``"<location><Type>.<path>: <kind>"``). Neither hints nor detail contain a submitted
            value.
    """
    if not isinstance(resource, dict):
        raise InputError(ErrorCode.INVALID_RESOURCE, hints=[f"{location.rstrip('.') or 'resource'}: wrong type"])
    if "resourceType" not in resource:
        raise InputError(ErrorCode.UNKNOWN_RESOURCE_TYPE, hints=[f"{location}resourceType: missing"])
    rtype = resource["resourceType"]
    if not isinstance(rtype, str):
        raise InputError(ErrorCode.UNKNOWN_RESOURCE_TYPE, hints=[f"{location}resourceType: wrong type"])
    if rtype not in R4_RESOURCE_TYPES:
        raise InputError(ErrorCode.UNKNOWN_RESOURCE_TYPE, hints=[f"{location}resourceType: unknown"])
    prefix = location + rtype
    checks = _VALIDATORS.get(rtype)
    if checks is None:
        hints = _check_other(resource, prefix)
    else:
        validate, choices = checks
        hints = (
            []
            if choices is None
            else [f"{prefix}.{element}: {_KINDS[kind]}" for element, kind in choices.problems(resource)]
        )
        try:
            validate(resource)
        except ValidationError as exc:
            hints.extend(_hints(exc, resource, prefix))
    # Raised outside the ``except`` so that the pydantic error (which holds the input) is not chained.
    if hints:
        detail = f"{rtype}: {len(hints)} problem(s)"
        if len(hints) > _MAX_HINTS:
            hints[_MAX_HINTS:] = [f"{prefix}: {len(hints) - _MAX_HINTS} more problems"]
        raise InputError(ErrorCode.INVALID_RESOURCE, detail=detail, hints=hints)
