"""Plausible measured values for one patient: growth, vital signs and lab results.

Each patient has stable traits (adult height, a BMI z-score, blood-pressure and heart-rate offsets and,
per lab code, a personal z-score drawn on first use), so repeated measurements of one person hang
together; each measurement adds noise. Growth follows the shape of the WHO/CDC growth charts (height as
a fraction of adult height by age, BMI medians by age), blood pressure rises with age (about 0.45
mm[Hg] a year in adults), all approximate. Every value is clamped to the code's physiological bounds
from :mod:`node.generator.labs` and rounded to its usual reporting precision.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Container
from random import Random

from node.generator.labs import LABS, MODIFIERS, VITALS, Lab
from node.generator.sampling import normal

__all__ = ["BY_CODE", "Physiology", "clamp_round", "rounded"]

# (age, fraction of adult height) for boys and girls, after the shape of the CDC growth charts.
_GROWTH = {
    "male": ((0, 0.285), (0.5, 0.38), (1, 0.428), (2, 0.495), (3, 0.545), (4, 0.59), (5, 0.63),
             (6, 0.665), (8, 0.735), (10, 0.795), (12, 0.855), (14, 0.925), (16, 0.975), (18, 1.0)),
    "female": ((0, 0.3), (0.5, 0.4), (1, 0.45), (2, 0.52), (3, 0.57), (5, 0.66), (8, 0.77), (10, 0.84),
               (12, 0.92), (14, 0.98), (16, 1.0)),
}  # fmt: skip
# (age, median BMI) after the WHO/CDC charts for children and survey means for adults.
_BMI_MEDIAN = ((0, 13.4), (0.5, 17.0), (1, 17.2), (2, 16.3), (4, 15.6), (6, 15.4), (8, 15.8), (10, 16.6),
               (12, 17.7), (14, 19.0), (16, 20.2), (18, 21.3), (20, 22.3), (30, 24.3), (50, 26.0),
               (70, 26.5), (90, 24.5))  # fmt: skip
BY_CODE: dict[str, Lab] = {**VITALS, **LABS}


def _first(pair: tuple[float, float]) -> float:
    return pair[0]


def _interpolate(table: tuple[tuple[float, float], ...], x: float) -> float:
    i = bisect_right(table, x, key=_first)
    if i == 0:
        return table[0][1]
    if i == len(table):
        return table[-1][1]
    (x0, y0), (x1, y1) = table[i - 1], table[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def rounded(code: str, value: float) -> float | int:
    """Clamp ``value`` to the bounds of ``code`` and round it as that code is usually reported."""
    return clamp_round(BY_CODE[code], value)


def clamp_round(lab: Lab, value: float) -> float | int:
    """Clamp ``value`` to the bounds of ``lab`` and round it to the lab's reporting precision."""
    value = lab.lo if value < lab.lo else lab.hi if value > lab.hi else value
    return round(value) if lab.decimals == 0 else round(value, lab.decimals)


def _age_adjusted(code: str, centre: float, age: float, male: bool) -> float:
    if code == "2160-0" and age < 16:
        return 0.25 + (centre - 0.25) * age / 16
    if code == "718-7" and age < 16:
        return 11.5 if age < 1 else 12.5 if age < 12 else (14.0 if male else 13.0)
    if code == "6768-6" and age < 16:
        return centre * 2.5
    if code == "2093-3":
        return centre - 35 if age < 18 else centre + max(-15.0, min(15.0, 0.5 * (age - 45)))
    if code == "2857-1":
        return centre * (max(age, 40.0) / 55) ** 2
    if code == "4537-7" and age > 50:
        return centre * (1 + (age - 50) / 50)
    if code == "2339-0" and age > 40:
        return centre + 0.15 * (age - 40)
    if code == "3094-0" and age > 50:
        return centre + 0.08 * (age - 50)
    if code == "20150-9":  # FEV1 grows with height and falls about 30 mL a year after 25
        scale = math.pow(min(1.0, age / 18), 1.5)
        return centre * scale - (0.03 * (age - 25) if age > 25 else 0.0)
    return centre


class Physiology:
    """One patient's stable traits and the measurement models built on them."""

    __slots__ = ("_rng", "_z", "adult_height", "bmi_z", "bp_offset", "hr_offset", "male", "obese")

    def __init__(self, traits: Random, noise: Random, *, sex: str, obese: bool) -> None:
        """Draw the stable traits from ``traits`` (the person's generator, shared between the sites
        that know them) and take measurement noise from ``noise`` (the site's generator)."""
        self._rng = noise
        self._z: dict[str, float] = {}
        self.male = sex == "male"
        self.obese = obese
        self.adult_height = traits.gauss(177.5, 7.0) if self.male else traits.gauss(164.5, 6.5)
        # Obesity is a recorded condition here, so an adult's BMI is >= 30 exactly when they have it.
        z = traits.gauss(0.0, 1.0)
        self.bmi_z = 1.7 + abs(z) * 0.8 if obese else min(max(z, -2.5), 1.5)
        self.bp_offset = traits.gauss(0.0, 8.0)
        self.hr_offset = traits.gauss(0.0, 6.0)

    def height(self, age: float) -> float:
        """Body height in cm at ``age``."""
        fraction = _interpolate(_GROWTH["male" if self.male else "female"], age)
        shrink = 0.1 * (age - 60) if age > 60 else 0.0
        return self.adult_height * fraction - shrink + 0.4 * normal(self._rng)

    def bmi(self, age: float) -> float:
        """Body-mass index at ``age`` (before measurement noise)."""
        median = _interpolate(_BMI_MEDIAN, age)
        spread = 4.2 if age >= 18 else median * 0.08
        value = median + spread * self.bmi_z
        return max(value, 30.2) if self.obese and age >= 18 else min(value, 29.8) if age >= 18 else value

    def head_circumference(self, age: float) -> float:
        """Head circumference in cm for children under two."""
        base = 35.0 + 13.5 * (1 - math.exp(-age / 0.6)) - (0.0 if self.male else 1.0)
        return base + self.bmi_z * 0.6 + 0.4 * normal(self._rng)

    def blood_pressure(self, age: float, active: Container[str], stress: float) -> tuple[int, int]:
        """(systolic, diastolic) in mm[Hg]."""
        if age < 18:
            systolic, diastolic = 95 + 1.3 * age, 55 + 1.0 * age
        else:
            systolic = 112 + 0.45 * (age - 18) + (4 if self.male else 0)
            diastolic = 72 + 0.25 * (min(age, 60) - 18) - (0.2 * (age - 60) if age > 60 else 0)
        if "I10" in active:
            systolic, diastolic = systolic + 15, diastolic + 8
        systolic += self.bp_offset + stress + 7.0 * normal(self._rng)
        diastolic += self.bp_offset * 0.5 + stress * 0.4 + 5.0 * normal(self._rng)
        sys_value = round(min(max(systolic, 75.0), 230.0))
        dia_value = round(min(max(diastolic, 40.0), sys_value - 20.0))
        return sys_value, dia_value

    def heart_rate(self, age: float, active: Container[str], stress: float) -> float:
        """Heart rate in /min."""
        base = 130 if age < 1 else 115 if age < 3 else 100 if age < 6 else 88 if age < 12 else 78 if age < 18 else 72
        if "I48.9" in active:  # atrial fibrillation: faster and more irregular
            base, noise = base + 8, 12.0
        else:
            noise = 8.0
        rate = base + (3 if not self.male else 0) + self.hr_offset + stress + noise * normal(self._rng)
        return max(rate, 0.55 * base)  # bradycardia has a floor

    def respiratory_rate(self, age: float, active: Container[str], stress: float) -> float:
        """Respiratory rate in /min."""
        base = 38 if age < 1 else 28 if age < 3 else 24 if age < 6 else 20 if age < 12 else 17 if age < 18 else 15
        extra = (3 if "J44.9" in active else 0) + (6 if "J18.9" in active else 0)
        return base + extra + stress * 0.15 + 2.0 * normal(self._rng)

    def temperature(self, fever: bool) -> float:
        """Body temperature in Cel."""
        rng = self._rng
        return 36.8 + 0.3 * normal(rng) + (rng.uniform(0.4, 2.2) if fever and rng.random() < 0.6 else 0.0)

    def oxygen_saturation(self, active: Container[str]) -> float:
        """Pulse-oximetry saturation in %."""
        drop = (4.0 if "J44.9" in active else 0.0) + (5.0 if "J18.9" in active else 0.0)
        return 97.8 - drop + normal(self._rng)

    def lab(self, code: str, age: float, active: Container[str]) -> float:
        """An unrounded value of lab ``code`` at ``age`` given the active conditions and states."""
        lab = LABS[code]
        centre = _age_adjusted(code, lab.male if self.male else lab.female, age, self.male)
        modifiers = MODIFIERS.get(code)
        if modifiers is not None:
            for key, effect in modifiers:
                if key in active:
                    centre = centre * effect if lab.log else centre + effect
        z = self._z.get(code)
        if z is None:
            z = self._z[code] = normal(self._rng)
        e = 0.7 * z + 0.7 * normal(self._rng)
        return centre * math.pow(lab.spread, e) if lab.log else centre + lab.spread * e

    def egfr(self, creatinine: float, age: float) -> float:
        """eGFR in mL/min/{1.73_m2} from creatinine (CKD-EPI 2009, without the race term)."""
        k, a = (0.9, -0.411) if self.male else (0.7, -0.329)
        ratio = creatinine / k
        value = 141 * math.pow(min(ratio, 1.0), a) * math.pow(max(ratio, 1.0), -1.209) * math.pow(0.993, age)
        return value if self.male else value * 1.018
