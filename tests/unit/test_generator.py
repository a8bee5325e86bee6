"""The synthetic patient generator: determinism, output shapes, FHIR validity and plausible content."""

from __future__ import annotations

import calendar
import gc
import re
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any, Literal

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from common.errors import InputError
from node.generator import GenerationSummary, generate, iter_patients, linkage_key
from node.generator.clock import TODAY, YEAR
from node.generator.labs import LABS, UCUM, VITALS
from node.generator.sampling import uuid4

POPULATION = 2_000

# Plausible ranges, independent of the generator's own bounds: what a clinician would accept as a
# real (possibly abnormal) result for each code.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "8302-2": (40, 215),  # body height, cm
    "29463-7": (2, 250),  # body weight, kg
    "39156-5": (11, 65),  # BMI
    "8480-6": (70, 240),  # systolic, mm[Hg]
    "8462-4": (35, 140),  # diastolic
    "8867-4": (35, 200),  # heart rate, /min
    "8310-5": (35, 42),  # body temperature, Cel
    "59408-5": (70, 100),  # SpO2, %
    "2339-0": (40, 500),  # glucose, mg/dL
    "4548-4": (3.8, 15),  # HbA1c, %
    "2160-0": (0.1, 12),  # creatinine, mg/dL
    "33914-3": (3, 160),  # eGFR
    "2093-3": (90, 450),  # total cholesterol, mg/dL
    "18262-6": (20, 350),  # LDL
    "2085-9": (15, 120),  # HDL
    "2571-8": (25, 1500),  # triglycerides
    "718-7": (5, 21),  # haemoglobin, g/dL
    "6690-2": (1, 40),  # leukocytes, 10*3/uL
    "777-3": (30, 800),  # platelets
    "2951-2": (120, 160),  # sodium, mmol/L
    "2823-3": (2.5, 7),  # potassium, mmol/L
}


def _seconds(text: str) -> int:
    """A FHIR date or UTC dateTime as seconds since the epoch."""
    if len(text) == 10:
        return calendar.timegm((int(text[:4]), int(text[5:7]), int(text[8:10]), 0, 0, 0))
    assert text.endswith("+00:00"), text
    return calendar.timegm(tuple(int(p) for p in re.split(r"[-T:]", text[:19])))


def _references(value: Any) -> Iterator[str]:
    """Every ``reference`` string anywhere inside a resource."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _code(resource: dict[str, Any], key: str = "code") -> str:
    code: str = resource[key]["coding"][0]["code"]
    return code


@dataclass
class Population:
    """Aggregates over a generated population, gathered in one streaming pass."""

    genders: Counter[str] = field(default_factory=Counter)
    ages: list[float] = field(default_factory=list)
    deceased_ages: list[float] = field(default_factory=list)
    families: Counter[str] = field(default_factory=Counter)
    full_names: Counter[tuple[str, str]] = field(default_factory=Counter)
    han_names: list[dict[str, Any]] = field(default_factory=list)
    national_ids: list[str] = field(default_factory=list)
    postcodes: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    observation_codes: Counter[str] = field(default_factory=Counter)
    observations_per_adult: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    units: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    hba1c: dict[bool, list[float]] = field(default_factory=lambda: defaultdict(list))
    systolic: dict[bool, list[float]] = field(default_factory=lambda: defaultdict(list))
    hypertension: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    date_errors: list[str] = field(default_factory=list)


def _check_dates(resource: dict[str, Any], birth: int, end: int, errors: list[str]) -> None:
    for key in ("effectiveDateTime", "issued", "onsetDateTime", "abatementDateTime", "recordedDate",
                "authoredOn", "occurrenceDateTime", "performedDateTime"):  # fmt: skip
        if key in resource and not birth <= _seconds(resource[key]) <= end:
            errors.append(f"{resource['resourceType']}.{key}")
    if "period" in resource:
        start, stop = _seconds(resource["period"]["start"]), _seconds(resource["period"]["end"])
        if not birth <= start <= stop <= end:
            errors.append(f"{resource['resourceType']}.period")


def _gather(patients: int, seed: int) -> Population:
    pop = Population()
    for resources in iter_patients(patients=patients, seed=seed):
        patient = resources[0]
        birth = _seconds(patient["birthDate"])
        end = _seconds(patient["deceasedDateTime"]) if "deceasedDateTime" in patient else TODAY
        age = (end - birth) / YEAR
        pop.genders[patient["gender"]] += 1
        pop.ages.append(age)
        if "deceasedDateTime" in patient:
            pop.deceased_ages.append(age)
        name = patient["name"][0]
        pop.families[name["family"]] += 1
        pop.full_names[name["family"], name["given"][0]] += 1
        pop.han_names.extend(patient["name"][1:])
        pop.national_ids.extend(i["value"] for i in patient["identifier"] if i["system"].startswith("urn:oid:"))
        pop.postcodes[patient["address"][0]["postalCode"]] += 1
        conditions = {_code(r) for r in resources if r["resourceType"] == "Condition"}
        diabetic, hypertensive = "E11.9" in conditions, "I10" in conditions
        if age >= 18:
            pop.hypertension["18-40" if age < 40 else "40-60" if age < 60 else "60+"].append(hypertensive)
        observations = 0
        for resource in resources:
            _check_dates(resource, birth, end, pop.date_errors)
            if resource["resourceType"] == "Encounter":
                pop.classes[resource["class"]["code"]] += 1
            if resource["resourceType"] != "Observation":
                continue
            observations += 1
            code = _code(resource)
            pop.observation_codes[code] += 1
            quantities = [(code, resource["valueQuantity"])] if "valueQuantity" in resource else []
            quantities += [(_code(c), c["valueQuantity"]) for c in resource.get("component", [])]
            for part_code, quantity in quantities:
                pop.values[part_code].append(quantity["value"])
                pop.units[part_code].add(f"{quantity['system']}|{quantity['code']}|{quantity['unit']}")
            if code == "4548-4":
                pop.hba1c[diabetic].append(resource["valueQuantity"]["value"])
            if code == "85354-9" and age >= 30:
                pop.systolic[hypertensive].append(resource["component"][0]["valueQuantity"]["value"])
        if 18 <= age < 65:
            pop.observations_per_adult.append(observations)
    return pop


@pytest.fixture(scope="module")
def population() -> Population:
    """Two thousand patients of site-a, seed 11, summarised."""
    return _gather(POPULATION, seed=11)


# -- determinism -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["bundle", "ndjson"])
def test_same_arguments_give_byte_identical_files(tmp_path: Path, fmt: Literal["bundle", "ndjson"]) -> None:
    """Generating twice with the same arguments writes the same files, byte for byte."""
    first = generate(patients=9, seed=4, out=tmp_path / "one", fmt=fmt, patients_per_bundle=4)
    second = generate(patients=9, seed=4, out=tmp_path / "two", fmt=fmt, patients_per_bundle=4)
    assert [p.name for p in first.files] == [p.name for p in second.files]
    assert first.files
    for a, b in zip(first.files, second.files, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_first_patients_do_not_depend_on_the_total() -> None:
    """The first patients of a small run equal the first patients of a larger run."""
    small = list(iter_patients(patients=4, seed=21))
    large = list(iter_patients(patients=30, seed=21))
    assert small == large[:4]


def test_seeds_and_sites_give_different_people() -> None:
    """A different seed or a different site gives different patients at the same index."""
    base = [p[0]["birthDate"] + p[0]["name"][0]["family"] for p in iter_patients(patients=30, seed=1)]
    other_seed = [p[0]["birthDate"] + p[0]["name"][0]["family"] for p in iter_patients(patients=30, seed=2)]
    other_site = [
        p[0]["birthDate"] + p[0]["name"][0]["family"] for p in iter_patients(patients=30, seed=1, site="site-b")
    ]
    assert sum(a != b for a, b in zip(base, other_seed, strict=True)) >= 25
    assert sum(a != b for a, b in zip(base, other_site, strict=True)) >= 20


def test_ids_are_version_4_uuids_drawn_from_the_seeded_generator() -> None:
    """An id is exactly str(uuid.UUID(int=rng.getrandbits(128), version=4)) for the patient's generator."""
    one, two = Random(99), Random(99)
    for _ in range(100):
        assert uuid4(one) == str(uuid.UUID(int=two.getrandbits(128), version=4))
    ids = [r["id"] for resources in iter_patients(patients=5, seed=3) for r in resources]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)


# -- output shapes -----------------------------------------------------------------------------------


def test_bundles_are_transactions_whose_references_resolve_inside(tmp_path: Path) -> None:
    """Each Bundle is a transaction of POST entries with urn:uuid fullUrls that its references use."""
    summary = generate(patients=7, seed=5, out=tmp_path, fmt="bundle", patients_per_bundle=3)
    assert [p.name for p in summary.files] == ["bundle-000001.json", "bundle-000002.json", "bundle-000003.json"]
    counted: Counter[str] = Counter()
    patients_per_file = []
    for path in summary.files:
        bundle = orjson.loads(path.read_bytes())
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "transaction"
        full_urls = set()
        for entry in bundle["entry"]:
            resource = entry["resource"]
            assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
            assert entry["request"] == {"method": "POST", "url": resource["resourceType"]}
            full_urls.add(entry["fullUrl"])
            counted[resource["resourceType"]] += 1
        references = [ref for entry in bundle["entry"] for ref in _references(entry["resource"])]
        assert references
        assert all(ref in full_urls for ref in references)
        assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
        patients_per_file.append(sum(e["resource"]["resourceType"] == "Patient" for e in bundle["entry"]))
    assert patients_per_file == [3, 3, 1]
    assert summary == GenerationSummary(patients=7, resources=dict(sorted(counted.items())), files=summary.files)


def test_ndjson_has_one_file_per_type_and_references_resolve_across_files(tmp_path: Path) -> None:
    """NDJSON holds one resource per line, one file per type, with Type/id references that resolve."""
    summary = generate(patients=12, seed=6, out=tmp_path / "nd", fmt="ndjson", patients_per_bundle=5)
    ids: dict[str, set[str]] = {}
    references: list[str] = []
    for path in summary.files:
        lines = path.read_bytes().splitlines()
        resources = [orjson.loads(line) for line in lines]
        assert {r["resourceType"] for r in resources} == {path.stem}
        assert len(resources) == summary.resources[path.stem]
        ids[path.stem] = {r["id"] for r in resources}
        references.extend(ref for r in resources for ref in _references(r))
    assert {"Patient", "Encounter", "Observation", "Condition", "DiagnosticReport"} <= set(ids)
    assert summary.resources["Patient"] == 12
    for ref in references:
        resource_type, _, resource_id = ref.partition("/")
        assert resource_id in ids[resource_type], ref


def test_iter_patients_yields_the_patient_first_with_relative_references() -> None:
    """Each yielded list starts with its Patient, and every reference is Type/id within the list."""
    for resources in iter_patients(patients=6, seed=8):
        assert resources[0]["resourceType"] == "Patient"
        assert sum(r["resourceType"] == "Patient" for r in resources) == 1
        local = {f"{r['resourceType']}/{r['id']}" for r in resources}
        assert all(ref in local for r in resources for ref in _references(r))


def test_progress_reports_patients_written_after_each_batch(tmp_path: Path) -> None:
    """The progress callback sees the running patient count after every batch, ending at the total."""
    seen: list[int] = []
    generate(patients=10, seed=1, out=tmp_path, fmt="ndjson", patients_per_bundle=4, progress=seen.append)
    assert seen == [4, 8, 10]


def test_zero_patients_write_nothing(tmp_path: Path) -> None:
    """Asking for no patients creates the folder and writes no files."""
    summary = generate(patients=0, seed=1, out=tmp_path / "empty")
    assert summary == GenerationSummary(patients=0, resources={}, files=[])
    assert (tmp_path / "empty").is_dir()


@pytest.mark.parametrize(
    "arguments",
    [{"patients": -1}, {"fmt": "csv"}, {"patients_per_bundle": 0}, {"site": "site a/../x"}],
)
def test_invalid_arguments_raise_input_error(tmp_path: Path, arguments: dict[str, Any]) -> None:
    """A negative count, an unknown format, an empty bundle size or a bad site name is an InputError."""
    options: dict[str, Any] = {"patients": 1, "seed": 1, "out": tmp_path / "out", **arguments}
    with pytest.raises(InputError):
        generate(**options)
    assert not (tmp_path / "out").exists()


def test_iter_patients_checks_its_arguments_when_called() -> None:
    """iter_patients refuses a bad site or count at the call, before any patient is asked for."""
    with pytest.raises(InputError):
        iter_patients(patients=1, seed=1, site="")
    with pytest.raises(InputError):
        iter_patients(patients=-5, seed=1)


# -- validity and consistency ------------------------------------------------------------------------


def test_a_sample_of_patients_is_valid_fhir() -> None:
    """Every resource of twenty patients validates against the FHIR R4B models."""
    count = 0
    for resources in iter_patients(patients=20, seed=17):
        for resource in resources:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            count += 1
    assert count > 500


def test_every_date_falls_between_birth_and_death_or_the_reference_day(population: Population) -> None:
    """No event precedes the patient's birth or follows their death or the fixed reference date."""
    assert population.date_errors == []


def test_generation_creates_no_reference_cycles() -> None:
    """Generated records free themselves by reference counting, so generate() may pause the collector."""
    gc.collect()
    gc.disable()
    try:
        for _ in iter_patients(patients=30, seed=2):
            pass
        assert gc.collect() == 0
    finally:
        gc.enable()


# -- identities and linkage ----------------------------------------------------------------------------


def test_mrns_and_national_ids_are_unique_and_fake() -> None:
    """Within a site every MRN and national id is distinct, and national ids use the unissued 9xx area."""
    mrns, national = [], []
    for resources in iter_patients(patients=1_000, seed=9):
        for identifier in resources[0]["identifier"]:
            if identifier["system"] == "urn:medfed:site-a:mrn":
                mrns.append(identifier["value"])
            else:
                assert identifier["system"] == "urn:oid:2.16.840.1.113883.4.1"
                national.append(identifier["value"])
    assert len(mrns) == len(set(mrns)) == 1_000
    assert len(national) == len(set(national)) > 450
    assert all(re.fullmatch(r"9\d\d-\d\d-\d{4}", n) for n in national)


def test_linkage_key_marks_the_same_person_at_two_sites() -> None:
    """Records with equal linkage keys share a birth date (bar rare typos) and mostly their names."""
    site_a = list(iter_patients(patients=400, seed=5, site="site-a"))
    site_b = list(iter_patients(patients=400, seed=5, site="site-b"))
    same_dob = same_family = pairs = 0
    for index in range(400):
        key = linkage_key(seed=5, site="site-a", index=index)
        if key is None or key != linkage_key(seed=5, site="site-b", index=index):
            continue
        pairs += 1
        a, b = site_a[index][0], site_b[index][0]
        assert a["id"] != b["id"]
        same_dob += abs(_seconds(a["birthDate"]) - _seconds(b["birthDate"])) <= 2 * 86_400
        same_family += a["name"][0]["family"] == b["name"][0]["family"]
    assert pairs >= 10
    assert same_dob == pairs
    assert same_family >= 0.75 * pairs


# -- plausible distributions ---------------------------------------------------------------------------


def test_sex_mix_and_age_pyramid_are_plausible(population: Population) -> None:
    """About half are female, the mean age is that of a European population and few are over 90."""
    female, male = population.genders["female"], population.genders["male"]
    assert 0.4 < female / (female + male) < 0.6
    assert set(population.genders) <= {"male", "female", "other", "unknown"}
    assert 36 < statistics.mean(population.ages) < 50
    assert sum(a >= 90 for a in population.ages) < 0.03 * POPULATION
    assert sum(a < 5 for a in population.ages) > 0.02 * POPULATION


def test_deaths_are_few_and_mostly_old(population: Population) -> None:
    """A few percent have died, and they are much older on average than the population."""
    assert 0.01 * POPULATION < len(population.deceased_ages) < 0.1 * POPULATION
    assert statistics.mean(population.deceased_ages) > 65


def test_names_and_postcodes_collide_realistically(population: Population) -> None:
    """Common surnames and postcodes repeat, full names collide, and about 5 % have Han-script names."""
    assert population.families.most_common(1)[0][1] >= 15
    assert sum(count > 1 for count in population.full_names.values()) >= 50
    assert population.postcodes.most_common(1)[0][1] >= 20
    han = population.han_names
    assert 0.02 * POPULATION < len(han) < 0.09 * POPULATION
    assert all(n["use"] == "official" and re.search(r"[\u4e00-\u9fff]", n["text"]) for n in han)
    assert 0.45 * POPULATION < len(population.national_ids) < 0.75 * POPULATION


def test_encounters_are_mostly_ambulatory(population: Population) -> None:
    """Most encounters are ambulatory; emergencies outnumber admissions and both occur."""
    total = sum(population.classes.values())
    assert population.classes["AMB"] > 0.7 * total
    assert 0 < population.classes["IMP"] < population.classes["EMER"]


def test_observation_codes_are_skewed_over_orders_of_magnitude(population: Population) -> None:
    """The most frequent code is far more common than the median code, which beats the rarest ones."""
    counts = sorted(population.observation_codes.values())
    assert len(counts) >= 60
    median, top = counts[len(counts) // 2], counts[-1]
    assert top >= 20 * median
    assert counts[len(counts) // 10] * 100 <= top


def test_a_typical_adult_has_tens_of_observations(population: Population) -> None:
    """The median adult under 65 has between 20 and 80 Observations."""
    assert 20 <= statistics.median(population.observations_per_adult) <= 80


def test_hypertension_rises_with_age(population: Population) -> None:
    """Recorded hypertension is several times more common over 60 than at 18-40."""
    share = {band: sum(flags) / len(flags) for band, flags in population.hypertension.items()}
    assert share["60+"] > 3 * share["18-40"]
    assert share["40-60"] > share["18-40"]


def test_values_follow_the_conditions(population: Population) -> None:
    """HbA1c is higher with type 2 diabetes, and systolic pressure higher with hypertension."""
    assert statistics.mean(population.hba1c[True]) > statistics.mean(population.hba1c[False]) + 1.0
    assert statistics.mean(population.systolic[True]) > statistics.mean(population.systolic[False]) + 8


def test_values_are_plausible_for_their_codes(population: Population) -> None:
    """Every value lies within its code's limits and uses the code's UCUM unit; key codes look clinical."""
    catalog = {**VITALS, **LABS}
    for code, values in population.values.items():
        lab = catalog[code]
        assert lab.lo <= min(values), code
        assert max(values) <= lab.hi, code
        assert population.units[code] == {f"{UCUM}|{lab.unit}|{lab.unit}"}, code
    for code, (low, high) in PLAUSIBLE.items():
        values = population.values[code]
        assert len(values) > 20, code
        assert low <= min(values), code
        assert max(values) <= high, code
    assert 5.0 < statistics.median(population.hba1c[False]) < 6.0
    assert 6.5 < statistics.median(population.hba1c[True]) < 9.0
    assert 110 < statistics.median(population.values["8480-6"]) < 140
