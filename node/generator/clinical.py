"""What happens at each visit: diagnoses, vital signs, lab panels, orders and procedures.

:class:`History` walks a patient's visits in time order and emits the FHIR resources of each. The
probabilities in :mod:`node.generator.orders` make codes' frequencies differ by orders of magnitude, as
in real records: vital signs at most visits, panels at some, single tests (troponin, lithium) rarely.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from random import Random
from typing import Any

from node.generator import orders, resources
from node.generator.catalog import (
    ACUTE,
    CHRONIC,
    ENCOUNTER_TYPES,
    MEDS,
    PROCEDURES,
    Acute,
    Allergen,
    prevalence_at,
)
from node.generator.clock import DAY, HOUR, datetime_string
from node.generator.labs import PANELS
from node.generator.people import Person
from node.generator.physiology import BY_CODE, Physiology, clamp_round, rounded
from node.generator.prevention import allergy_resource
from node.generator.sampling import Weighted, below, between, normal
from node.generator.visits import Visit, schedule_visits

__all__ = ["History"]

_CHRONIC = {c.code: c for c in CHRONIC}
_COVID_FROM = 1_583_020_800  # 2020-03-01T00:00:00Z
_ACUTE_CHANCE = {"symptom": 0.75, "emergency": 0.6, "inpatient": 0.6}
_PAINFUL = ("S93.4", "M54.5", "S52.5", "R07.4", "M17.9")


def _acute_options(age: int, female: bool, inpatient: bool, covid: bool) -> Weighted[Acute] | None:
    options = [a for a in ACUTE if (a.inpatient or not inpatient) and (a.code != "U07.1" or covid)]
    weights = [prevalence_at(a.weights, age) * (a.female if female else 1.0) for a in options]
    return Weighted(options, weights) if sum(weights) > 0.0 else None


# (whole age, female, inpatient, COVID-19 era) -> the acute problems and their weights; filled lazily.
_ACUTE_OPTIONS: dict[tuple[int, bool, bool, bool], Weighted[Acute] | None] = {}


class History:
    """Builds one patient's resources at one site, visit by visit (:meth:`run`)."""

    def __init__(
        self,
        rng: Random,
        person: Person,
        body: Physiology,
        onsets: dict[str, int],
        *,
        patient: str,
        new_id: Callable[[], str],
        ref: Callable[[str, str], str],
    ) -> None:
        self.rng = rng
        self.person = person
        self.body = body
        self.onsets = onsets
        self.patient = patient
        self.new_id = new_id
        self.ref = ref
        self.out: list[dict[str, Any]] = []
        self.active: set[str] = set()  # recorded chronic conditions, and "warfarin" (membership only)
        self.orders: dict[str, list[dict[str, Any]]] = {}  # chronic medicine -> its orders
        self.reasons: dict[str, str] = {}  # chronic medicine -> reference of its condition
        self.condition_refs: dict[str, str] = {}  # chronic condition code -> its reference
        self.last_order: dict[str, int] = {}

    def run(self, allergens: list[Allergen]) -> list[dict[str, Any]]:
        """Emit every visit's resources in time order, then settle the medication statuses."""
        rng = self.rng
        visits = schedule_visits(rng, self.person, len(self.onsets))
        pending = sorted(self.onsets.items(), key=lambda item: (item[1], item[0]))
        allergy_visit = below(rng, len(visits))
        for i, visit in enumerate(visits):
            new: list[str] = []
            while pending and pending[0][1] <= visit.end:
                new.append(pending.pop(0)[0])
            self.visit(visit, new, allergens if i == allergy_visit else [])
        alive = self.person.death is None
        for med_orders in self.orders.values():
            for resource in med_orders[:-1]:
                resource["status"] = "completed"
            med_orders[-1]["status"] = "active" if alive and rng.random() < 0.9 else "stopped"
        return self.out

    # -- emitting -----------------------------------------------------------------------------------

    def _emit(self, resource: dict[str, Any]) -> str:
        self.out.append(resource)
        return self.ref(resource["resourceType"], resource["id"])

    def _observation(self, encounter: str, code: str, value: float, effective: str, issued: str) -> str:
        """Emit an Observation and return its id."""
        lab = BY_CODE[code]
        oid = self.new_id()
        reported = clamp_round(lab, value)
        self.out.append(resources.observation(oid, self.patient, encounter, lab, reported, effective, issued))
        return oid

    def _condition(self, encounter: str, code: str, display: str, *, onset: int, at: int, chronic: bool) -> str:
        rng = self.rng
        clinical, abatement = "active", None
        if chronic and code in ("F32.9", "F41.1") and rng.random() < 0.3:
            clinical = "remission"
        elif not chronic or (code in ("D50.9", "E55.9") and rng.random() < 0.4):
            ends = at + (between(rng, 90, 365) if chronic else between(rng, 7, 28)) * DAY
            if ends < self.person.end:
                clinical, abatement = "resolved", datetime_string(ends)
        verification = "confirmed" if rng.random() < (0.97 if chronic else 0.9) else "provisional"
        resource = resources.condition(
            self.new_id(),
            self.patient,
            encounter,
            (code, display),
            category="problem-list-item" if chronic else "encounter-diagnosis",
            clinical=clinical,
            verification=verification,
            onset=datetime_string(max(onset, self.person.birth)),
            recorded=datetime_string(at),
            abatement=abatement,
        )
        return self._emit(resource)

    def _order(self, encounter: str, med: str, at: str, reason: str, status: str = "active") -> dict[str, Any]:
        resource = resources.medication_request(self.new_id(), self.patient, encounter, MEDS[med], at, reason, status)
        self._emit(resource)
        return resource

    def _acute(self, visit: Visit, age: float) -> Acute | None:
        rng = self.rng
        if rng.random() >= _ACUTE_CHANCE.get(visit.kind, 0.0):
            return None
        key = (int(age), self.person.sex == "female", visit.kind == "inpatient", visit.start >= _COVID_FROM)
        if key not in _ACUTE_OPTIONS:
            _ACUTE_OPTIONS[key] = _acute_options(*key)
        options = _ACUTE_OPTIONS[key]
        return options.pick(rng) if options is not None else None

    # -- one visit ----------------------------------------------------------------------------------

    def visit(self, visit: Visit, new_chronic: list[str], allergens: list[Allergen]) -> None:
        """Emit the encounter and everything recorded at it."""
        rng, person = self.rng, self.person
        age = person.age(visit.start)
        start = datetime_string(visit.start)
        kind = ENCOUNTER_TYPES[visit.kind]
        encounter = self._emit(
            resources.encounter(self.new_id(), self.patient, kind, start, datetime_string(visit.end))
        )
        for code in new_chronic:
            chronic = _CHRONIC[code]
            onset = min(self.onsets[code], visit.start)
            reason = self._condition(encounter, code, chronic.display, onset=onset, at=visit.start, chronic=True)
            self.active.add(code)
            self.condition_refs[code] = reason
            for med, p in chronic.meds:
                if med not in self.orders and rng.random() < p:
                    self.orders[med] = [self._order(encounter, med, start, reason)]
                    self.reasons[med] = reason
                    self.last_order[med] = visit.start
                    if med == "warfarin":
                        self.active.add("warfarin")
        if visit.kind in ("checkup", "follow_up"):  # renew chronic prescriptions about once a year
            for med, last in self.last_order.items():
                if visit.start - last >= 300 * DAY:
                    self.orders[med].append(self._order(encounter, med, start, self.reasons[med]))
                    self.last_order[med] = visit.start
        active = self.active
        acute = self._acute(visit, age)
        acute_ref = None
        if acute is not None:
            onset = visit.start - below(rng, 5 * DAY)
            acute_ref = self._condition(
                encounter, acute.code, acute.display, onset=onset, at=visit.start, chronic=False
            )
            active = active | ({acute.code, "infection"} if acute.infection else {acute.code})
            if acute.med and rng.random() < acute.med_p:
                ongoing = "active" if person.death is None else "stopped"
                status = "completed" if visit.start + 30 * DAY < person.end else ongoing
                self._order(encounter, acute.med, start, acute_ref, status)
        issued_at = min(visit.start + HOUR * between(rng, 1, 7), person.end - 60)
        days = min(3, max(1, (visit.end - visit.start) // DAY)) if visit.kind == "inpatient" else 1
        for day in range(days):
            ts = visit.start + day * DAY
            effective = start if day == 0 else datetime_string(ts)
            issued = datetime_string(min(issued_at + day * DAY, person.end - 60))
            self._vitals(visit.kind, encounter, person.age(ts), active, effective, day)
            if day < 2:
                self._labs(visit.kind, encounter, person.age(ts), active, effective, issued, day)
        self._procedures(visit.kind, encounter, age, active, start, acute, acute_ref)
        for allergen in allergens:
            self._emit(
                allergy_resource(
                    rng,
                    allergen,
                    aid=self.new_id(),
                    patient=self.patient,
                    encounter=encounter,
                    recorded=start,
                )
            )

    def _vitals(self, kind: str, encounter: str, age: float, active: set[str], at: str, day: int) -> None:
        rng, body, emit = self.rng, self.body, self._observation
        stress = 8.0 if kind == "emergency" else 4.0 if kind == "inpatient" else 0.0
        for item in orders.vital_signs(rng, kind, age, day):
            if item == "height":
                emit(encounter, "8302-2", body.height(age), at, at)
            elif item == "bmi":
                height = round(body.height(age), 1)
                weight = round(body.bmi(age) * (height / 100) ** 2 * (1 + 0.01 * normal(rng)), 1)
                emit(encounter, "29463-7", weight, at, at)
                if age < 2:
                    emit(encounter, "9843-4", body.head_circumference(age), at, at)
                else:
                    emit(encounter, "39156-5", weight / (height / 100) ** 2, at, at)
                    if age < 20:
                        z = body.bmi_z + 0.15 * normal(rng)
                        emit(encounter, "59576-9", 50 * (1 + math.erf(z / math.sqrt(2))), at, at)
            elif item == "bp":
                systolic, diastolic = body.blood_pressure(age, active, stress)
                self._emit(resources.blood_pressure(self.new_id(), self.patient, encounter, systolic, diastolic, at))
            elif item == "hr":
                emit(encounter, "8867-4", body.heart_rate(age, active, stress), at, at)
            elif item == "rr":
                emit(encounter, "9279-1", body.respiratory_rate(age, active, stress), at, at)
            elif item == "temp":
                emit(encounter, "8310-5", body.temperature("infection" in active), at, at)
            elif item == "spo2":
                emit(encounter, "59408-5", body.oxygen_saturation(active), at, at)
            else:  # pain, self-reported from age 4
                hurts = kind == "emergency" or any(code in active for code in _PAINFUL)
                score = rng.randint(3, 9) if hurts else rng.choice((0, 0, 0, 1, 2, 3))
                emit(encounter, "72514-3", score, at, at)

    def _labs(self, kind: str, encounter: str, age: float, active: set[str], at: str, issued: str, day: int) -> None:
        body, lab = self.body, self.body.lab
        panels, tests = orders.lab_orders(self.rng, kind, age, active, day, male=body.male, meds=self.orders)
        for key in panels:
            values: dict[str, float] = {}
            if key == "lipid":
                total, hdl, tg = (
                    lab("2093-3", age, active),
                    lab("2085-9", age, active),
                    lab("2571-8", age, active),
                )
                ldl = total - hdl - tg / 5 + 6.0 * normal(self.rng)
                values = {"2093-3": total, "18262-6": ldl, "2085-9": hdl, "2571-8": tg}
            elif key == "cbc":
                hb, mcv, mchc = (
                    lab("718-7", age, active),
                    lab("787-2", age, active),
                    lab("786-4", age, active),
                )
                hct = hb / mchc * 100
                rbc = hct * 10 / mcv
                values = {"718-7": hb, "4544-3": hct, "789-8": rbc, "787-2": mcv, "785-6": hb * 10 / rbc}
                values.update({"786-4": mchc, "6690-2": lab("6690-2", age, active), "777-3": lab("777-3", age, active)})
            else:
                for code in PANELS[key].members:
                    if code != "33914-3":
                        values[code] = lab(code, age, active)
                    elif age >= 18:  # eGFR from the reported creatinine; not for children
                        values[code] = body.egfr(rounded("2160-0", values["2160-0"]), age)
            ref = self.ref
            results = [
                ref("Observation", self._observation(encounter, code, value, at, issued))
                for code, value in values.items()
            ]
            self._emit(resources.report(self.new_id(), self.patient, encounter, PANELS[key], results, at, issued))
        for code in tests:
            self._observation(encounter, code, lab(code, age, active), at, issued)

    def _procedures(
        self,
        kind: str,
        encounter: str,
        age: float,
        active: set[str],
        at: str,
        acute: Acute | None,
        acute_ref: str | None,
    ) -> None:
        female = self.person.sex == "female"
        chosen = orders.procedures(self.rng, kind, age, active, female=female, on_meds=bool(self.orders))
        if acute is not None and acute.procedure and self.rng.random() < (0.5 if kind == "symptom" else 0.7):
            chosen.setdefault(acute.procedure, acute.code)
        for key, reason_code in chosen.items():
            reason = None
            if reason_code is not None:
                reason = (
                    acute_ref
                    if acute is not None and reason_code == acute.code
                    else self.condition_refs.get(reason_code)
                )
            self._emit(resources.procedure(self.new_id(), self.patient, encounter, PROCEDURES[key], at, reason))
            if key == "spirometry" and age >= 6:
                self._observation(encounter, "20150-9", self.body.lab("20150-9", age, active), at, at)
