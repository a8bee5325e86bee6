"""Immunizations and allergies of one patient (see the catalog module for the rates' sources)."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from random import Random
from typing import Any

from node.generator import resources
from node.generator.catalog import ALLERGENS, CHILD_SCHEDULE, VACCINES, Allergen
from node.generator.clock import DAY, WINDOW_START, YEAR, datetime_string
from node.generator.people import Person
from node.generator.sampling import Weighted, below, between

__all__ = ["allergy_resource", "choose_allergens", "immunizations"]

_ALLERGEN = Weighted(ALLERGENS, [a.weight for a in ALLERGENS])
_FLU_SEASONS = tuple(calendar.timegm((year, 10, 1, 0, 0, 0)) for year in range(2015, 2026))
_SCHEDULE_END = (max(days for _, days in CHILD_SCHEDULE) + 14) * DAY
_COVID_START = calendar.timegm((2021, 1, 15, 0, 0, 0))
_ZOSTER_START = calendar.timegm((2018, 1, 1, 0, 0, 0))


def choose_allergens(rng: Random) -> list[Allergen]:
    """The patient's recorded allergies: none for about 80 %, otherwise one to three distinct ones."""
    if rng.random() >= 0.2:
        return []
    roll = rng.random()
    count = 1 if roll < 0.7 else 2 if roll < 0.9 else 3
    chosen: list[Allergen] = []
    for _ in range(count):
        allergen = _ALLERGEN.pick(rng)
        if allergen not in chosen:
            chosen.append(allergen)
    return chosen


def allergy_resource(
    rng: Random, allergen: Allergen, *, aid: str, patient: str, encounter: str, recorded: str
) -> dict[str, Any]:
    """An AllergyIntolerance with plausible statuses and criticality."""
    roll = rng.random()
    clinical = "active" if roll < 0.9 else "inactive" if roll < 0.95 else "resolved"
    verification = "confirmed" if rng.random() < 0.8 else "unconfirmed"
    roll = rng.random()
    criticality = "high" if roll < allergen.high else "unable-to-assess" if roll > 0.93 else "low"
    return resources.allergy(
        aid,
        patient,
        encounter,
        allergen,
        clinical=clinical,
        verification=verification,
        criticality=criticality,
        recorded=recorded,
    )


def immunizations(rng: Random, person: Person, patient: str, new_id: Callable[[], str]) -> list[dict[str, Any]]:
    """The patient's vaccinations within the record window, oldest first."""
    lo = max(WINDOW_START, person.birth + DAY)
    hi = person.end - DAY
    doses: list[tuple[int, str]] = []

    def give(code: str, ts: int) -> None:
        if lo <= ts <= hi:
            doses.append((ts, code))

    # Children on the schedule (skipped for those whose last scheduled dose fell before the window).
    if person.birth + _SCHEDULE_END > lo and rng.random() < 0.92:
        for code, days in CHILD_SCHEDULE:
            if rng.random() < 0.97:
                give(code, person.birth + days * DAY + below(rng, 14 * DAY))
    age_now = person.age(person.end)
    share = 0.35 if age_now < 18 else 0.2 if age_now < 50 else 0.35 if age_now < 65 else 0.6
    if rng.random() < min(0.95, share * 1.3):  # influenza takers get most seasons' shot
        for season in _FLU_SEASONS:
            ts = season + below(rng, 60 * DAY)
            if person.age(ts) >= 0.5 and rng.random() < 0.6:
                give("140", ts)
    if person.age(_COVID_START) >= 12 and rng.random() < 0.7:
        ts = _COVID_START + below(rng, 180 * DAY)
        give("208", ts)
        ts += between(rng, 21 * DAY, 60 * DAY)
        give("208", ts)
        for _ in range((rng.random() < 0.6) + (rng.random() < 0.4)):
            ts += between(rng, 180 * DAY, 320 * DAY)
            give("208", ts)
    if age_now >= 18 and rng.random() < 0.35:
        give("113", lo + int(rng.random() * max(0, hi - lo)))
    at_65 = person.birth + 65 * YEAR
    if hi > at_65 and rng.random() < 0.4:
        start = max(lo, at_65)
        give("33", start + int(rng.random() * (hi - start)))
    if person.age(_ZOSTER_START) >= 50 and rng.random() < 0.25:
        ts = _ZOSTER_START + below(rng, 5 * 365 * DAY)
        give("187", ts)
        give("187", ts + between(rng, 60 * DAY, 180 * DAY))
    doses.sort()
    return [resources.immunization(new_id(), patient, code, VACCINES[code], datetime_string(ts)) for ts, code in doses]
