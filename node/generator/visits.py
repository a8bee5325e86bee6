"""When a patient is ill and when they come to the hospital: chronic conditions and the visit calendar.

Visit rates per year of observation (before :data:`VISIT_SCALE`) follow the shape of outpatient contact
rates by age (many in infancy, few in young adults, most in the old; OECD Health Statistics, approximate),
plus a quarter visit a year per chronic condition. Classes come out at about 85 % ambulatory, 10 %
emergency and 5 % inpatient.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from node.generator.catalog import CHRONIC, prevalence_at
from node.generator.clock import DAY, HOUR, WINDOW_START, YEAR
from node.generator.people import Person
from node.generator.sampling import Weighted, below, between, poisson

__all__ = ["VISIT_SCALE", "Visit", "chronic_conditions", "schedule_visits"]

# One hospital sees only part of a person's care.
VISIT_SCALE = 0.45
_KINDS_CHILD = ("well_child", "symptom", "emergency", "inpatient")
_KINDS_ADULT = ("checkup", "symptom", "follow_up", "emergency", "inpatient")


@dataclass(slots=True)
class Visit:
    """One encounter's kind and period (seconds since the epoch)."""

    kind: str
    start: int
    end: int


def chronic_conditions(rng: Random, person: Person) -> dict[str, int]:
    """ICD-10 code -> onset time of each chronic condition the person has by the end of the record."""
    age = person.age(person.end)
    male = person.sex == "male"
    have: dict[str, int] = {}
    for chronic in CHRONIC:
        p = prevalence_at(chronic.prevalence, age) * (chronic.male if male else chronic.female)
        if p <= 0.0:
            continue
        for other, factor in chronic.boosts:
            if other in have:
                p *= factor
        if rng.random() < p:
            first = chronic.prevalence[0][0]
            onset_age = first + rng.random() * max(0.0, age - first)
            have[chronic.code] = min(person.birth + int(onset_age * YEAR), person.end - DAY)
    return have


def _rate(age: float) -> float:
    if age < 1:
        return 6.0
    if age < 2:
        return 4.0
    if age < 6:
        return 1.5
    if age < 18:
        return 0.9
    if age < 40:
        return 0.7
    if age < 60:
        return 0.9
    return 1.4 if age < 75 else 2.0


def _kinds(age_group: int, chronic: int) -> Weighted[str]:
    if age_group == 0:  # under 3
        return Weighted(_KINDS_CHILD, (0.65, 0.42, 0.1, 0.03))
    if age_group == 1:  # 3 to 17
        return Weighted(_KINDS_CHILD, (0.42, 0.42, 0.1, 0.03))
    old = 0.02 if age_group == 3 else 0.0  # over 70
    return Weighted(_KINDS_ADULT, (0.3, 0.38, min(0.4, 0.08 * chronic), 0.1, 0.03 + 0.01 * min(chronic, 4) + old))


# (age group, number of chronic conditions up to 5) -> visit kinds with their weights.
_KIND = {(group, chronic): _kinds(group, chronic) for group in range(4) for chronic in range(6)}


def _kind(rng: Random, age: float, chronic: int) -> str:
    group = 0 if age < 3 else 1 if age < 18 else 2 if age <= 70 else 3
    return _KIND[group, min(chronic, 5)].pick(rng)


def _length_of_stay(rng: Random) -> int:
    return min(21, 1 + int(rng.expovariate(1 / 3.5)))


def schedule_visits(rng: Random, person: Person, chronic: int) -> list[Visit]:
    """Visits in time order, none overlapping, all after birth and before death or today (1-30)."""
    first = max(WINDOW_START, person.birth + HOUR)
    last = person.end - 2 * DAY
    expected = 0.0
    t = first
    while t < last:
        step = min(YEAR, last - t)
        expected += step / YEAR * (_rate(person.age(t + step // 2)) + 0.25 * chronic)
        t += step
    count = min(30, max(1, poisson(rng, expected * VISIT_SCALE)))
    visits: list[Visit] = []
    for _ in range(count):
        t = first + int(rng.random() * (last - first))
        kind = _kind(rng, person.age(t), chronic)
        day = t - t % DAY
        if kind in ("emergency", "inpatient"):
            start = day + below(rng, DAY)
            duration = between(rng, 2 * HOUR, 9 * HOUR) if kind == "emergency" else _length_of_stay(rng) * DAY
        else:
            start = day + 8 * HOUR + 300 * below(rng, 108)
            duration = 300 * between(rng, 3, 10)
        start = max(start, person.birth + HOUR)
        visits.append(Visit(kind, start, min(start + duration, person.end - HOUR)))
    if person.death is not None and rng.random() < 0.5:  # half of deaths happen in hospital
        end = person.death - between(rng, HOUR, 6 * HOUR)
        start = max(end - _length_of_stay(rng) * DAY, person.birth + HOUR)
        visits = [v for v in visits if v.end < start]
        visits.append(Visit("inpatient", start, end))
    visits.sort(key=lambda v: v.start)
    kept: list[Visit] = []
    for visit in visits:
        if not kept or visit.start > kept[-1].end:
            kept.append(visit)
    return kept
