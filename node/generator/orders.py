"""What gets measured, tested and done at a visit, by visit kind, age and the patient's conditions.

The probabilities are judgement calls shaped after primary-care and hospital practice (vital signs at
most visits; a metabolic panel at about a third of adult check-ups, more often when older; HbA1c at most
diabetes follow-ups; troponin mainly for chest pain in the emergency department). They give
Observation codes whose frequencies span about three orders of magnitude.
"""

from __future__ import annotations

from collections.abc import Container
from random import Random

__all__ = ["lab_orders", "procedures", "vital_signs"]

# Vital signs by visit kind: (item, probability); "bmi" stands for weight with BMI (or head size).
_VITALS: dict[str, tuple[tuple[str, float], ...]] = {
    "well_child": (("height", 1.0), ("bmi", 1.0), ("bp", 0.9), ("hr", 0.9), ("rr", 0.7), ("temp", 0.3)),
    "checkup": (("height", 0.5), ("bmi", 0.95), ("bp", 0.95), ("hr", 0.9), ("rr", 0.3), ("temp", 0.15),
                ("spo2", 0.15), ("pain", 0.25)),
    "follow_up": (("height", 0.1), ("bmi", 0.8), ("bp", 0.9), ("hr", 0.8), ("rr", 0.3), ("spo2", 0.2),
                  ("pain", 0.2)),
    "symptom": (("bmi", 0.2), ("bp", 0.7), ("hr", 0.8), ("temp", 0.7), ("rr", 0.35), ("spo2", 0.3),
                ("pain", 0.35)),
    "emergency": (("bmi", 0.3), ("bp", 0.95), ("hr", 0.98), ("temp", 0.9), ("rr", 0.95), ("spo2", 0.9),
                  ("pain", 0.85)),
    "inpatient": (("height", 0.3), ("bmi", 0.7), ("bp", 0.95), ("hr", 0.95), ("temp", 0.95), ("rr", 0.95),
                  ("spo2", 0.95), ("pain", 0.7)),
}  # fmt: skip
_FIRST_DAY_ONLY = ("height", "bmi")

# Single tests: (LOINC code, probability) by visit kind.
_CHECKUP_TESTS = (("3016-3", 0.06), ("1989-3", 0.04), ("3084-1", 0.02), ("2324-2", 0.02), ("2132-9", 0.015))
_EMERGENCY_TESTS = (("1988-5", 0.35), ("48065-7", 0.08), ("2524-7", 0.07), ("3040-3", 0.06), ("2157-6", 0.04),
                    ("6301-6", 0.08), ("19123-9", 0.07), ("33959-8", 0.03), ("2532-0", 0.02))  # fmt: skip
_INPATIENT_TESTS = (("1988-5", 0.6), ("19123-9", 0.35), ("2777-1", 0.25), ("2532-0", 0.1), ("2524-7", 0.12),
                    ("6301-6", 0.2), ("2276-4", 0.03), ("2132-9", 0.03), ("2284-8", 0.02))  # fmt: skip
# Follow-up of a chronic condition: ICD-10 code -> ((panel or LOINC code, probability), ...).
_FOLLOW_UP: dict[str, tuple[tuple[str, float], ...]] = {
    "E11.9": (("4548-4", 0.8), ("bmp", 0.4), ("9318-7", 0.3), ("lipid", 0.3)),
    "I10": (("bmp", 0.35),),
    "E78.5": (("lipid", 0.5),),
    "N18.3": (("bmp", 0.7), ("cbc", 0.3), ("2777-1", 0.2), ("9318-7", 0.2)),
    "I50.9": (("30934-4", 0.4), ("bmp", 0.5)),
    "E03.9": (("3016-3", 0.7), ("3024-7", 0.2)),
    "D50.9": (("cbc", 0.8), ("2276-4", 0.5), ("2498-4", 0.3)),
    "F32.9": (("14334-7", 0.02),),
    "M81.9": (("1989-3", 0.3),),
    "E55.9": (("1989-3", 0.5),),
    "C61": (("2857-1", 0.6),),
    "G30.9": (("2132-9", 0.15), ("2284-8", 0.1)),
}
# Rare tests, each ordered at about one emergency or admission in a few hundred.
_RARE_TESTS = (("5902-2", 0.02), ("14979-9", 0.015), ("3255-7", 0.006), ("33037-3", 0.008), ("1968-7", 0.006),
               ("1994-3", 0.005), ("4679-7", 0.004), ("2692-2", 0.004), ("2143-6", 0.003), ("4542-7", 0.002),
               ("16362-6", 0.002), ("4092-3", 0.0015), ("4086-5", 0.001), ("3432-2", 0.0008))  # fmt: skip
# Rare tests at check-ups (endocrine work-up, tumour markers).
_CHECKUP_RARE = (("2842-3", 0.004), ("2986-8", 0.004), ("2243-4", 0.003), ("15067-2", 0.003),
                 ("10501-5", 0.002), ("2039-6", 0.002), ("10334-1", 0.0015), ("1834-1", 0.001))  # fmt: skip
_PANEL_KEYS = ("bmp", "cmp", "lipid", "cbc", "urine", "abg")


def vital_signs(rng: Random, kind: str, age: float, day: int) -> list[str]:
    """The vital-sign items measured at a visit of ``kind`` (on day ``day`` of a stay)."""
    chosen = []
    for item, p in _VITALS[kind]:
        if day > 0 and item in _FIRST_DAY_ONLY:
            continue
        if (item == "bp" and age < 3) or (item == "pain" and age < 4):
            continue
        if rng.random() < p:
            chosen.append(item)
    return chosen


def lab_orders(
    rng: Random, kind: str, age: float, active: Container[str], day: int, *, male: bool, meds: Container[str]
) -> tuple[list[str], list[str]]:
    """(panel keys, single LOINC codes) ordered at a visit, without repeats, in a fixed order."""
    r = rng.random
    want: list[str] = []
    if kind == "checkup":
        if r() < (0.35 if age >= 40 else 0.15):
            want.append("cmp" if r() < 0.35 else "bmp")
        if r() < 0.2:
            want.append("cbc")
        if age >= 35 and r() < (0.6 if "E78.5" in active or "E11.9" in active else 0.25):
            want.append("lipid")
        if age >= 45 and "E11.9" not in active and r() < 0.12:
            want.append("4548-4")
        if male and age >= 50 and r() < 0.12:
            want.append("2857-1")
        want.extend(code for code, p in _CHECKUP_TESTS if r() < p)
        want.extend(code for code, p in _CHECKUP_RARE if r() < p)
    elif kind == "well_child":
        if r() < 0.05:
            want.append("cbc")
    elif kind == "follow_up":
        for condition, tests in _FOLLOW_UP.items():
            if condition in active:
                want.extend(code for code, p in tests if r() < p)
    elif kind == "symptom":
        if r() < 0.1:
            want.append("cbc")
        if r() < (0.25 if "infection" in active else 0.08):
            want.append("1988-5")
        if "N39.0" in active and r() < 0.7:
            want.append("urine")
        if r() < 0.02:
            want.append("4537-7")
    elif kind == "emergency":
        if r() < 0.5:
            want.append("cbc")
        if r() < 0.45:
            want.append("cmp" if r() < 0.3 else "bmp")
        if r() < (0.8 if "N39.0" in active else 0.1):
            want.append("urine")
        if age >= 30 and r() < (0.95 if "R07.4" in active else 0.2):
            want.append("10839-9")
        if r() < (0.25 if "J44.9" in active or "J18.9" in active else 0.02):
            want.append("abg")
        want.extend(code for code, p in _EMERGENCY_TESTS if r() < p)
        want.extend(code for code, p in _RARE_TESTS if r() < p)
    elif kind == "inpatient":
        first = day == 0
        if first or r() < 0.5:
            want.append("cbc")
        if first or r() < 0.5:
            want.append("bmp")
        if first:
            if r() < (0.7 if "I50.9" in active else 0.05):
                want.append("30934-4")
            if r() < 0.25:
                want.append("10839-9")
            if r() < (0.5 if "infection" in active else 0.1):
                want.append("33959-8")
            if r() < 0.25:
                want.append("urine")
            if r() < (0.4 if "J44.9" in active or "J18.9" in active else 0.05):
                want.append("abg")
            want.extend(code for code, p in _INPATIENT_TESTS if r() < p)
            want.extend(code for code, p in _RARE_TESTS if r() < p * 2)
    if kind in ("checkup", "follow_up") and "warfarin" in active and r() < 0.8:
        want.append("6301-6")
    if kind == "follow_up" and "digoxin" in meds and r() < 0.3:
        want.append("10535-3")
    unique = list(dict.fromkeys(want))
    if "cmp" in unique and "bmp" in unique:
        unique.remove("bmp")
    return [k for k in unique if k in _PANEL_KEYS], [k for k in unique if k not in _PANEL_KEYS]


def procedures(
    rng: Random, kind: str, age: float, active: Container[str], *, female: bool, on_meds: bool
) -> dict[str, str | None]:
    """Procedure keys done at a visit -> the ICD-10 code of the condition they are for (or None)."""
    r = rng.random
    chosen: dict[str, str | None] = {}
    if kind == "checkup":
        if age >= 12 and r() < 0.3:
            chosen["depression_screening"] = None
        if r() < (0.4 if age >= 65 else 0.1):
            chosen["needs_assessment"] = None
        if on_meds and r() < 0.6:
            chosen["med_reconciliation"] = None
        if female and 50 <= age < 75 and r() < 0.25:
            chosen["mammography"] = None
        if 50 <= age < 76 and r() < 0.03:
            chosen["colonoscopy"] = None
    elif kind == "follow_up":
        if on_meds and r() < 0.5:
            chosen["med_reconciliation"] = None
        for code in ("J44.9", "J45.9"):
            if code in active and age >= 6 and r() < 0.3:
                chosen["spirometry"] = code
        for code in ("I48.9", "I25.9", "I50.9"):
            if code in active and r() < 0.2:
                chosen["ecg"] = code
    elif kind in ("emergency", "inpatient"):
        emergency = kind == "emergency"
        if age >= 30 and r() < (0.35 if emergency else 0.6):
            chosen["ecg"] = None
        if r() < (0.2 if emergency else 0.5):
            chosen["chest_xray"] = None
        if not emergency:
            if 5 <= age < 40 and r() < 0.05:
                chosen["appendectomy"] = None
            if "M17.9" in active and age > 55 and r() < 0.3:
                chosen["knee_replacement"] = "M17.9"
            if female and 20 <= age < 43 and r() < 0.2:
                chosen["cesarean"] = None
            if "I48.9" in active and r() < 0.1:
                chosen["ablation"] = "I48.9"
    return chosen
