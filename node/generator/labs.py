"""Observation codes (LOINC, UCUM units), their value distributions and the lab panels.

Centres and spreads are typical adult reference values from general clinical-chemistry references
(Tietz-style reference intervals, as summarised in common laboratory handbooks), recalled from memory
and **approximate**. Condition effects (``MODIFIERS``) move the centre in the direction and roughly by
the size seen in practice (HbA1c about 7-8 % with type 2 diabetes, BNP an order of magnitude higher in
heart failure, ferritin very low in iron-deficiency anaemia). ``lo``/``hi`` are hard physiological limits
that every generated value respects. The tables are text so that each code stays on one line.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["LABS", "LOINC", "MODIFIERS", "PANELS", "UCUM", "VITALS", "Lab", "Panel"]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


class Lab(NamedTuple):
    """One quantitative observation code and how its values are distributed."""

    code: str
    display: str
    unit: str
    male: float  # centre (mean, or median when ``log``) for males
    female: float  # centre for females
    spread: float  # standard deviation, or geometric standard deviation when ``log``
    log: bool
    lo: float
    hi: float
    decimals: int
    category: str


class Panel(NamedTuple):
    """A lab panel: the DiagnosticReport code and the Observation codes it groups."""

    code: str
    display: str
    members: tuple[str, ...]


def _parse(table: str, category: str) -> dict[str, Lab]:
    labs: dict[str, Lab] = {}
    for line in table.strip().splitlines():
        code, unit, male, female, spread, dist, lo, hi, dp, display = (f.strip() for f in line.split("|"))
        labs[code] = Lab(
            code, display, unit, float(male), float(female), float(spread), dist == "log", float(lo),
            float(hi), int(dp), "exam" if code == "20150-9" else category,
        )  # fmt: skip
    return labs


# Vital signs. Their values come from the growth, blood-pressure and rate models in physiology.py; the
# centres here are reference points and the bounds are enforced.
# code|unit|male|female|spread|dist|lo|hi|dp|display
VITALS = _parse(
    """
8302-2|cm|177|164|7|n|30|230|1|Body height
29463-7|kg|82|68|14|n|1|300|1|Body weight
39156-5|kg/m2|26|26|4|n|10|70|1|Body mass index (BMI) [Ratio]
85354-9|mm[Hg]|0|0|0|n|0|0|0|Blood pressure panel with all children optional
8480-6|mm[Hg]|125|120|14|n|70|240|0|Systolic blood pressure
8462-4|mm[Hg]|78|75|9|n|35|140|0|Diastolic blood pressure
8867-4|/min|72|75|10|n|30|220|0|Heart rate
9279-1|/min|16|16|2|n|6|70|0|Respiratory rate
8310-5|Cel|36.8|36.8|0.3|n|34|42|1|Body temperature
59408-5|%|97|97|1.2|n|70|100|0|Oxygen saturation in Arterial blood by Pulse oximetry
72514-3|{score}|2|2|2|n|0|10|0|Pain severity - 0-10 verbal numeric rating [Score] - Reported
9843-4|cm|45|44|1.5|n|28|60|1|Head Occipital-frontal circumference
59576-9|%|50|50|28|n|0|100|1|Body mass index (BMI) [Percentile] Per age and sex
""",
    "vital-signs",
)

# Laboratory tests, panels first, then single tests from common to rare. eGFR is computed from
# creatinine, LDL from the other lipids and the red-cell indices from haemoglobin and MCV.
# code|unit|male|female|spread|dist|lo|hi|dp|display
LABS = _parse(
    """
2339-0|mg/dL|92|90|10|n|40|500|0|Glucose [Mass/volume] in Blood
3094-0|mg/dL|15|13|3.5|n|3|120|0|Urea nitrogen [Mass/volume] in Serum or Plasma
2160-0|mg/dL|0.95|0.75|0.14|n|0.1|12|2|Creatinine [Mass/volume] in Serum or Plasma
33914-3|mL/min/{1.73_m2}|90|90|20|n|3|160|0|Glomerular filtration rate/1.73 sq M.predicted (MDRD)
17861-6|mg/dL|9.5|9.4|0.4|n|6|13|1|Calcium [Mass/volume] in Serum or Plasma
2951-2|mmol/L|140|140|2.5|n|120|160|0|Sodium [Moles/volume] in Serum or Plasma
2823-3|mmol/L|4.2|4.1|0.35|n|2.5|7|1|Potassium [Moles/volume] in Serum or Plasma
2075-0|mmol/L|103|103|2.5|n|85|120|0|Chloride [Moles/volume] in Serum or Plasma
2028-9|mmol/L|25|25|2.5|n|12|40|0|Carbon dioxide, total [Moles/volume] in Serum or Plasma
1751-7|g/dL|4.3|4.2|0.3|n|1.5|5.8|1|Albumin [Mass/volume] in Serum or Plasma
2885-2|g/dL|7.1|7.0|0.4|n|4|10|1|Protein [Mass/volume] in Serum or Plasma
1742-6|U/L|25|18|1.5|log|4|800|0|Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma
1920-8|U/L|24|21|1.35|log|5|800|0|Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma
6768-6|U/L|75|70|1.3|log|20|900|0|Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma
1975-2|mg/dL|0.7|0.55|1.5|log|0.1|15|1|Bilirubin.total [Mass/volume] in Serum or Plasma
2093-3|mg/dL|192|198|32|n|90|450|0|Cholesterol [Mass/volume] in Serum or Plasma
18262-6|mg/dL|118|114|30|n|20|350|0|Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay
2085-9|mg/dL|48|60|12|n|15|120|0|Cholesterol in HDL [Mass/volume] in Serum or Plasma
2571-8|mg/dL|125|105|1.55|log|25|1500|0|Triglyceride [Mass/volume] in Serum or Plasma
718-7|g/dL|15.0|13.5|1.0|n|5|21|1|Hemoglobin [Mass/volume] in Blood
4544-3|%|44|40|3|n|15|65|1|Hematocrit [Volume Fraction] of Blood by Automated count
789-8|10*6/uL|5.0|4.5|0.4|n|1.5|7.5|2|Erythrocytes [#/volume] in Blood by Automated count
787-2|fL|90|89|4|n|55|125|1|MCV [Entitic volume] by Automated count
785-6|pg|30|30|1.5|n|15|42|1|MCH [Entitic mass] by Automated count
786-4|g/dL|33.8|33.6|0.9|n|27|38|1|MCHC [Mass/volume] by Automated count
6690-2|10*3/uL|6.8|6.8|1.3|log|1|40|1|Leukocytes [#/volume] in Blood by Automated count
777-3|10*3/uL|240|265|55|n|30|800|0|Platelets [#/volume] in Blood by Automated count
4548-4|%|5.4|5.4|0.35|n|3.8|15|1|Hemoglobin A1c/Hemoglobin.total in Blood
9318-7|mg/g|8|10|2.0|log|1|3000|0|Albumin/Creatinine [Mass Ratio] in Urine
3016-3|m[IU]/L|1.7|1.9|1.7|log|0.01|60|2|Thyrotropin [Units/volume] in Serum or Plasma
3024-7|ng/dL|1.25|1.2|0.18|n|0.2|4|2|Thyroxine (T4) free [Mass/volume] in Serum or Plasma
6301-6|{INR}|1.0|1.0|0.08|n|0.8|8|1|INR in Platelet poor plasma by Coagulation assay
30934-4|pg/mL|30|40|2.0|log|2|5000|0|Natriuretic peptide B [Mass/volume] in Serum or Plasma
1988-5|mg/L|1.8|2.2|2.5|log|0.1|400|1|C reactive protein [Mass/volume] in Serum or Plasma
2276-4|ng/mL|130|60|2.0|log|2|2000|0|Ferritin [Mass/volume] in Serum or Plasma
2498-4|ug/dL|100|90|30|n|10|300|0|Iron [Mass/volume] in Serum or Plasma
1989-3|ng/mL|26|27|9|n|3|120|0|25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma
2857-1|ng/mL|1.0|1.0|2.0|log|0.02|500|2|Prostate specific Ag [Mass/volume] in Serum or Plasma
10839-9|ng/mL|0.01|0.008|2.5|log|0.001|60|3|Troponin I.cardiac [Mass/volume] in Serum or Plasma
20150-9|L|4.2|3.1|0.45|n|0.3|7|2|FEV1
19123-9|mg/dL|2.0|2.0|0.2|n|0.8|4|1|Magnesium [Mass/volume] in Serum or Plasma
2777-1|mg/dL|3.5|3.6|0.5|n|0.8|10|1|Phosphate [Mass/volume] in Serum or Plasma
48065-7|ng/mL{FEU}|320|360|2.0|log|50|20000|0|Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma
2524-7|mmol/L|1.2|1.1|1.5|log|0.3|20|1|Lactate [Moles/volume] in Serum or Plasma
3040-3|U/L|35|33|1.6|log|3|5000|0|Lipase [Enzymatic activity/volume] in Serum or Plasma
2157-6|U/L|130|90|1.8|log|10|50000|0|Creatine kinase [Enzymatic activity/volume] in Serum or Plasma
2532-0|U/L|180|175|1.3|log|60|4000|0|Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma
33959-8|ng/mL|0.06|0.06|3.0|log|0.01|200|2|Procalcitonin [Mass/volume] in Serum or Plasma
5811-5|1|1.018|1.018|0.006|n|1.0|1.04|3|Specific gravity of Urine by Test strip
5803-2|[pH]|6.0|6.0|0.6|n|4.5|8.5|1|pH of Urine by Test strip
2132-9|pg/mL|450|470|1.5|log|60|2500|0|Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma
2284-8|ng/mL|11|12|1.5|log|1|40|1|Folate [Mass/volume] in Serum or Plasma
3084-1|mg/dL|6.0|4.8|1.2|n|1|15|1|Urate [Mass/volume] in Serum or Plasma
2324-2|U/L|30|20|1.8|log|3|2000|0|Gamma glutamyl transferase [Enzymatic activity/volume] in Serum or Plasma
4537-7|mm/h|8|12|2.0|log|1|140|0|Erythrocyte sedimentation rate by Westergren method
10535-3|ng/mL|1.0|1.0|0.3|n|0.1|4|1|Digoxin [Mass/volume] in Serum or Plasma
14334-7|mmol/L|0.7|0.7|0.15|n|0.1|3|2|Lithium [Moles/volume] in Serum or Plasma
2744-1|[pH]|7.4|7.4|0.04|n|6.9|7.7|2|pH of Arterial blood
2019-8|mm[Hg]|40|39|4|n|15|110|0|Carbon dioxide [Partial pressure] in Arterial blood
2703-7|mm[Hg]|92|92|9|n|30|500|0|Oxygen [Partial pressure] in Arterial blood
5902-2|s|12|12|0.8|n|9|80|1|Prothrombin time (PT)
14979-9|s|30|30|3|n|18|150|1|aPTT in Platelet poor plasma by Coagulation assay
3255-7|mg/dL|300|320|60|n|80|900|0|Fibrinogen [Mass/volume] in Platelet poor plasma by Coagulation assay
33037-3|mmol/L|10|10|2.5|n|2|30|0|Anion gap in Serum or Plasma
1968-7|mg/dL|0.15|0.12|1.6|log|0.01|10|2|Bilirubin.direct [Mass/volume] in Serum or Plasma
1994-3|mmol/L|1.22|1.22|0.05|n|0.7|1.6|2|Calcium.ionized [Moles/volume] in Blood
4679-7|%|1.2|1.3|0.3|n|0.2|10|1|Reticulocytes/100 erythrocytes in Blood
2692-2|mosm/kg|290|290|5|n|240|340|0|Osmolality of Serum or Plasma
2143-6|ug/dL|12|12|4|n|1|60|1|Cortisol [Mass/volume] in Serum or Plasma
4542-7|mg/dL|120|125|45|n|5|400|0|Haptoglobin [Mass/volume] in Serum or Plasma
2842-3|ng/mL|9|13|1.6|log|1|300|1|Prolactin [Mass/volume] in Serum or Plasma
2986-8|ng/dL|550|35|1.35|log|5|1500|0|Testosterone [Mass/volume] in Serum or Plasma
2243-4|pg/mL|25|90|2.0|log|5|2000|0|Estradiol (E2) [Mass/volume] in Serum or Plasma
15067-2|m[IU]/mL|5|8|2.0|log|0.5|150|1|Follitropin [Units/volume] in Serum or Plasma
10501-5|m[IU]/mL|4|6|2.0|log|0.3|100|1|Lutropin [Units/volume] in Serum or Plasma
16362-6|umol/L|25|22|1.4|log|5|300|0|Ammonia [Moles/volume] in Plasma
2039-6|ng/mL|1.5|1.2|1.8|log|0.1|500|1|Carcinoembryonic Ag [Mass/volume] in Serum or Plasma
10334-1|U/mL|12|12|1.8|log|1|5000|0|Cancer Ag 125 [Units/volume] in Serum or Plasma
1834-1|ng/mL|3|3|1.6|log|0.5|1000|1|Alpha-1-Fetoprotein [Mass/volume] in Serum or Plasma
4092-3|ug/mL|14|14|4|n|1|60|1|Vancomycin [Mass/volume] in Serum or Plasma --trough
4086-5|ug/mL|75|75|20|n|5|200|0|Valproate [Mass/volume] in Serum or Plasma
3432-2|ug/mL|7|7|2|n|0.5|20|1|Carbamazepine [Mass/volume] in Serum or Plasma
""",
    "laboratory",
)

# Condition effects on the centre: an additive shift for normal values, a factor for log-normal ones.
# Keys are ICD-10 codes, or the states "warfarin" (on warfarin) and "infection" (an acute infection).
MODIFIERS: dict[str, tuple[tuple[str, float], ...]] = {
    "2339-0": (("E11.9", 55.0),),
    "4548-4": (("E11.9", 2.1),),
    "9318-7": (("E11.9", 3.0), ("N18.3", 5.0)),
    "3094-0": (("N18.3", 12.0), ("I50.9", 5.0)),
    "2160-0": (("N18.3", 0.75),),
    "2823-3": (("N18.3", 0.35),),
    "2777-1": (("N18.3", 0.7),),
    "718-7": (("D50.9", -2.6), ("N18.3", -1.3)),
    "787-2": (("D50.9", -11.0),),
    "2276-4": (("D50.9", 0.12),),
    "2498-4": (("D50.9", -50.0),),
    "2093-3": (("E78.5", 42.0),),
    "2085-9": (("E11.9", -5.0), ("E66.9", -4.0)),
    "2571-8": (("E78.5", 1.45), ("E11.9", 1.3), ("E66.9", 1.2)),
    "30934-4": (("I50.9", 12.0), ("I48.9", 2.5)),
    "6301-6": (("warfarin", 1.5),),
    "3016-3": (("E03.9", 2.5),),
    "3024-7": (("E03.9", -0.2),),
    "1989-3": (("E55.9", -13.0),),
    "2857-1": (("C61", 9.0),),
    "10839-9": (("I25.9", 3.0), ("R07.4", 4.0)),
    "20150-9": (("J44.9", -1.6), ("J45.9", -0.5)),
    "1988-5": (("infection", 14.0),),
    "6690-2": (("infection", 1.5),),
    "33959-8": (("infection", 4.0),),
    "2028-9": (("J44.9", 2.5),),
    "6768-6": (("M81.9", 1.2),),
    "2019-8": (("J44.9", 8.0),),
    "2703-7": (("J44.9", -18.0), ("J18.9", -15.0)),
    "2744-1": (("J44.9", -0.03),),
    "5902-2": (("warfarin", 10.0),),
}

_BMP = ("2339-0", "3094-0", "2160-0", "33914-3", "17861-6", "2951-2", "2823-3", "2075-0", "2028-9")

PANELS: dict[str, Panel] = {
    "bmp": Panel("51990-0", "Basic metabolic panel - Blood", _BMP),
    "cmp": Panel(
        "24323-8",
        "Comprehensive metabolic 2000 panel - Serum or Plasma",
        (*_BMP, "1751-7", "2885-2", "1742-6", "1920-8", "6768-6", "1975-2"),
    ),
    "lipid": Panel(
        "57698-3", "Lipid panel with direct LDL - Serum or Plasma", ("2093-3", "18262-6", "2085-9", "2571-8")
    ),
    "cbc": Panel(
        "58410-2",
        "CBC panel - Blood by Automated count",
        ("718-7", "4544-3", "789-8", "787-2", "785-6", "786-4", "6690-2", "777-3"),
    ),
    "urine": Panel("24357-6", "Urinalysis macro (dipstick) panel - Urine", ("5811-5", "5803-2")),
    "abg": Panel("24336-0", "Gas panel - Arterial blood", ("2744-1", "2019-8", "2703-7")),
}
