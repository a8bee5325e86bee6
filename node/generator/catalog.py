"""Code tables and frequencies for the synthetic population (everything except labs and names).

All frequencies are recalled from public statistics and are **approximate**; they aim at the right
shape (who gets what, roughly how often), not at any one country's exact figures:

- Age pyramid: Eurostat EU-27 population by five-year age group, 1 January 2023 (about 4.5 % aged 0-4,
  7 % per band at 50-59, 0.9 % aged 90+). Sex: 51 % female (Eurostat, US Census).
- Mortality: a Gompertz fit to EU/US period life tables, annual risk ``exp(-10.5 + 0.095 * age)``
  (0.8 % at 60, 5.5 % at 80, 14 % at 90).
- Chronic-condition prevalence by age and sex: hypertension and hyperlipidaemia (NHANES 2017-2020, ESC
  atlas), type 2 diabetes (IDF Diabetes Atlas 2021), asthma and COPD (CDC, GOLD/BOLD), CKD stage 3
  (NHANES CKD surveillance), atrial fibrillation (ESC: about 10 % over 80), ischaemic heart disease and
  heart failure (ESC/AHA statistics), depression and anxiety (WHO, GBD), obesity (Eurostat EHIS 2019),
  knee osteoarthritis and osteoporosis (GBD, IOF), hypothyroidism (thyroid society summaries),
  migraine (GBD), Alzheimer disease (Alzheimer Europe), breast and prostate cancer (ECIS prevalence).
  ``boosts`` add the well-known co-morbidity links (obesity -> diabetes, diabetes -> CKD).
- Acute problems and their age shapes: primary-care consultation statistics (RCGP/NIVEL style): URTI,
  otitis in young children, UTI mostly in women, pneumonia and fractures in the old.
- Encounter classes: about 85 % ambulatory, 10 % emergency, 5 % inpatient (OECD Health Statistics).
- Vaccines: the CDC/ECDC childhood schedules; influenza uptake about 20 % of adults and 55 % over 65
  (ECDC); COVID-19 doses 2021-2023.
- Allergies: about 20 % of records hold one, about 10 % a penicillin label (published EHR studies).

Code systems: ICD-10 (WHO, ``http://hl7.org/fhir/sid/icd-10``) for conditions, SNOMED CT for
encounter types, procedures and allergens, RxNorm for medicines (codes as used by Synthea, from memory),
CVX for vaccines. The tables are text so that each code stays on one line.
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = [
    "ACT_CODE",
    "ACUTE",
    "AGE_BANDS",
    "ALLERGENS",
    "CHILD_SCHEDULE",
    "CHRONIC",
    "CVX",
    "ENCOUNTER_TYPES",
    "ICD10",
    "MEDS",
    "PROCEDURES",
    "RXNORM",
    "SNOMED",
    "VACCINES",
    "Acute",
    "Allergen",
    "Chronic",
    "EncounterType",
    "annual_mortality",
]

ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

# (first age of the band, share of the population), Eurostat EU-27 2023, approximate; the last band is
# 95-100.
AGE_BANDS: tuple[tuple[int, float], ...] = (
    (0, 4.5), (5, 5.0), (10, 5.3), (15, 5.2), (20, 5.2), (25, 5.6), (30, 6.2), (35, 6.6), (40, 6.8),
    (45, 6.9), (50, 7.3), (55, 7.3), (60, 6.6), (65, 5.7), (70, 5.0), (75, 4.0), (80, 2.8), (85, 1.7),
    (90, 0.7), (95, 0.2),
)  # fmt: skip


def annual_mortality(age: float) -> float:
    """Annual probability of death at ``age`` (Gompertz fit, approximate)."""
    return min(0.6, math.exp(-10.5 + 0.095 * age))


def _pairs(text: str) -> tuple[tuple[str, float], ...]:
    return tuple((k, float(v)) for k, v in (item.split(":") for item in text.split(",") if item))


def _steps(text: str) -> tuple[tuple[float, float], ...]:
    return tuple((float(k), float(v)) for k, v in _pairs(text))


def _rows(text: str) -> list[list[str]]:
    return [[f.strip() for f in line.split("|")] for line in text.strip().splitlines()]


class Chronic(NamedTuple):
    """A chronic condition: prevalence steps by age, sex factors, co-morbidity boosts and medicines."""

    code: str
    display: str
    prevalence: tuple[tuple[float, float], ...]  # (from age, prevalence)
    male: float
    female: float
    boosts: tuple[tuple[str, float], ...]  # (other condition, factor on prevalence)
    meds: tuple[tuple[str, float], ...]  # (medicine key, probability of being prescribed)


class Acute(NamedTuple):
    """An acute problem seen at a visit: age weights, female factor, where it is seen, its treatment."""

    code: str
    display: str
    weights: tuple[tuple[float, float], ...]  # (from age, relative weight among acute problems)
    female: float
    inpatient: bool  # may be the reason for an admission
    infection: bool
    med: str
    med_p: float
    procedure: str


def prevalence_at(steps: tuple[tuple[float, float], ...], age: float) -> float:
    """The value of the last step whose age is at or below ``age``."""
    value = 0.0
    for start, step_value in steps:
        if age < start:
            break
        value = step_value
    return value


_DISPLAY: dict[str, str] = {
    r[0]: r[1]
    for r in _rows("""
E66.9|Obesity, unspecified
I10|Essential (primary) hypertension
E11.9|Type 2 diabetes mellitus without complications
E78.5|Hyperlipidaemia, unspecified
J45.9|Asthma, unspecified
J44.9|Chronic obstructive pulmonary disease, unspecified
N18.3|Chronic kidney disease, stage 3
I48.9|Atrial fibrillation and atrial flutter, unspecified
I25.9|Chronic ischaemic heart disease, unspecified
I50.9|Heart failure, unspecified
F32.9|Depressive episode, unspecified
F41.1|Generalized anxiety disorder
M17.9|Gonarthrosis, unspecified
E03.9|Hypothyroidism, unspecified
G43.9|Migraine, unspecified
M81.9|Osteoporosis, unspecified
K21.9|Gastro-oesophageal reflux disease without oesophagitis
G30.9|Alzheimer disease, unspecified
I63.9|Cerebral infarction, unspecified
C50.9|Malignant neoplasm of breast, unspecified
C61|Malignant neoplasm of prostate
L20.9|Atopic dermatitis, unspecified
E55.9|Vitamin D deficiency, unspecified
D50.9|Iron deficiency anaemia, unspecified
J06.9|Acute upper respiratory infection, unspecified
J20.9|Acute bronchitis, unspecified
J02.9|Acute pharyngitis, unspecified
H66.9|Otitis media, unspecified
J01.9|Acute sinusitis, unspecified
N39.0|Urinary tract infection, site not specified
A09.9|Gastroenteritis and colitis of unspecified origin
S93.4|Sprain and strain of ankle
M54.5|Low back pain
J18.9|Pneumonia, unspecified
S52.5|Fracture of lower end of radius
U07.1|COVID-19, virus identified
R07.4|Chest pain, unspecified
L03.9|Cellulitis, unspecified
""")
}

# Medicines started when a chronic condition is diagnosed: ICD-10 code|medicine key:probability, ...
_CHRONIC_MEDS: dict[str, str] = {
    r[0]: r[1]
    for r in _rows("""
I10|lisinopril:0.55,amlodipine:0.35,hctz:0.2
E11.9|metformin:0.85,insulin:0.12
E78.5|atorvastatin:0.5,simvastatin:0.3
J45.9|albuterol:0.9,fluticasone:0.5
J44.9|albuterol:0.8,fluticasone_salmeterol:0.6
I48.9|apixaban:0.5,warfarin:0.25,metoprolol:0.5,digoxin:0.08
I25.9|aspirin:0.7,atorvastatin:0.5,nitroglycerin:0.3,metoprolol:0.4
I50.9|furosemide:0.8,metoprolol:0.5,lisinopril:0.5
F32.9|sertraline:0.6
F41.1|sertraline:0.4
M17.9|acetaminophen:0.4,ibuprofen:0.3
E03.9|levothyroxine:0.95
G43.9|ibuprofen:0.5
M81.9|alendronate:0.6
K21.9|omeprazole:0.7
G30.9|donepezil:0.6
I63.9|clopidogrel:0.6,atorvastatin:0.6
C50.9|tamoxifen:0.5
L20.9|hydrocortisone:0.6
D50.9|ferrous_sulfate:0.85
""")
}

# Processed in this order, so a boost can only refer to a condition above it.
# ICD-10 code|prevalence from age|male factor|female factor|boosts (other condition:factor)
CHRONIC: tuple[Chronic, ...] = tuple(
    Chronic(
        r[0],
        _DISPLAY[r[0]],
        _steps(r[1]),
        float(r[2]),
        float(r[3]),
        _pairs(r[4]),
        _pairs(_CHRONIC_MEDS.get(r[0], "")),
    )
    for r in _rows("""
E66.9|2:0.05,12:0.07,18:0.14,40:0.19,60:0.21,80:0.14|1|1|
I10|18:0.05,30:0.09,40:0.2,50:0.33,60:0.45,70:0.55,80:0.62|1.1|0.9|E66.9:1.5
E11.9|18:0.008,30:0.02,40:0.04,50:0.07,60:0.11,70:0.14,80:0.13|1.2|0.85|E66.9:2.2,I10:1.3
E78.5|20:0.04,30:0.08,40:0.16,50:0.26,60:0.34,80:0.3|1.05|0.95|E11.9:1.5
J45.9|2:0.06,5:0.09,18:0.07,60:0.08|0.9|1.1|
J44.9|40:0.02,50:0.04,60:0.07,70:0.1,80:0.11|1.2|0.8|
N18.3|40:0.012,50:0.025,60:0.05,70:0.1,80:0.18|1|1|E11.9:2,I10:1.4
I48.9|50:0.01,60:0.025,70:0.05,80:0.1|1.3|0.8|I10:1.3
I25.9|40:0.008,50:0.025,60:0.06,70:0.09,80:0.12|1.5|0.6|E11.9:1.5,E78.5:1.4
I50.9|50:0.008,60:0.015,70:0.035,80:0.08|1.1|0.9|I25.9:2.5,I48.9:2
F32.9|12:0.03,18:0.07,65:0.06|0.65|1.35|
F41.1|12:0.03,18:0.05,65:0.035|0.65|1.35|F32.9:2.5
M17.9|40:0.02,50:0.05,60:0.1,70:0.17,80:0.22|0.75|1.25|E66.9:1.6
E03.9|18:0.02,40:0.04,60:0.06|0.35|1.65|
G43.9|10:0.04,18:0.1,50:0.07,65:0.03|0.55|1.45|
M81.9|50:0.03,60:0.07,70:0.13,80:0.2|0.3|1.7|
K21.9|18:0.05,40:0.09,60:0.11|1|1|E66.9:1.4
G30.9|65:0.015,75:0.05,85:0.13|0.8|1.2|
I63.9|50:0.008,65:0.025,80:0.06|1.2|0.8|I48.9:2.5,I10:1.5
C50.9|35:0.004,50:0.015,65:0.03|0|2|
C61|50:0.01,65:0.04,80:0.08|2|0|
L20.9|0:0.1,6:0.07,18:0.03|1|1|J45.9:2
E55.9|18:0.04,70:0.08|1|1|
D50.9|0:0.015,15:0.04,50:0.02,70:0.04|0.4|1.6|
""")
)

# Weights are relative among acute problems at a symptom or emergency visit.
# ICD-10 code|weight from age|female factor|inpatient|infection|medicine|p(medicine)|procedure
ACUTE: tuple[Acute, ...] = tuple(
    Acute(r[0], _DISPLAY[r[0]], _steps(r[1]), float(r[2]), r[3] == "y", r[4] == "y", r[5], float(r[6]), r[7])
    for r in _rows("""
J06.9|0:25,5:15,18:10,65:6|1|n|y|acetaminophen|0.3|
J20.9|0:8,5:5,18:5,65:8|1|n|y|amoxicillin|0.1|
J02.9|0:5,3:12,18:6,65:2|1|n|y|amoxicillin|0.5|throat_culture
H66.9|0:20,6:5,12:1|1|n|y|amoxicillin|0.7|
J01.9|0:1,5:4,18:6|1.2|n|y|amox_clav|0.5|
N39.0|0:1,15:3,60:5|3|y|y|ciprofloxacin|0.8|urine_culture
A09.9|0:10,5:6,18:5|1|y|y||0|
S93.4|0:1,8:6,18:5,50:3|1|n|n|ibuprofen|0.6|radiography
M54.5|15:2,25:8,65:6|1|n|n|ibuprofen|0.7|
J18.9|0:2,5:1,18:1,65:4,80:7|1|y|y|amox_clav|0.9|chest_xray
S52.5|0:0.5,8:1,18:0.5,60:1.5|1.3|y|n|acetaminophen|0.6|radiography
U07.1|0:4|1|y|y|acetaminophen|0.4|
R07.4|18:2,40:4|1|y|n|aspirin|0.3|ecg
L03.9|0:0.5,18:1.5|1|y|y|amox_clav|0.8|
""")
)

# key|RxNorm code|display
MEDS: dict[str, tuple[str, str]] = {
    r[0]: (r[1], r[2])
    for r in _rows("""
metformin|860975|24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet
insulin|106892|insulin isophane, human 70 UNT/ML / insulin, regular, human 30 UNT/ML Injectable Suspension
lisinopril|314076|lisinopril 10 MG Oral Tablet
amlodipine|197361|amlodipine 5 MG Oral Tablet
hctz|310798|Hydrochlorothiazide 25 MG Oral Tablet
atorvastatin|259255|atorvastatin 80 MG Oral Tablet
simvastatin|314231|Simvastatin 10 MG Oral Tablet
albuterol|745679|200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler
fluticasone|895994|120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler
fluticasone_salmeterol|896209|Fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Inhaler
apixaban|1364445|apixaban 5 MG Oral Tablet
warfarin|855332|Warfarin Sodium 5 MG Oral Tablet
metoprolol|866414|24 HR metoprolol succinate 100 MG Extended Release Oral Tablet
digoxin|197604|Digoxin 0.125 MG Oral Tablet
aspirin|243670|aspirin 81 MG Oral Tablet
nitroglycerin|705129|Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray
furosemide|310429|furosemide 20 MG Oral Tablet
sertraline|312940|sertraline 50 MG Oral Tablet
acetaminophen|313782|Acetaminophen 325 MG Oral Tablet
ibuprofen|310965|Ibuprofen 200 MG Oral Tablet
levothyroxine|966222|Levothyroxine Sodium 0.075 MG Oral Tablet
alendronate|904419|Alendronic acid 10 MG Oral Tablet
omeprazole|402014|Omeprazole 20 MG Delayed Release Oral Capsule
donepezil|997224|Donepezil hydrochloride 10 MG Oral Tablet
clopidogrel|309362|Clopidogrel 75 MG Oral Tablet
tamoxifen|198240|Tamoxifen 10 MG Oral Tablet
hydrocortisone|106258|Hydrocortisone 10 MG/ML Topical Cream
ferrous_sulfate|310325|Ferrous sulfate 325 MG Oral Tablet
amoxicillin|308182|Amoxicillin 250 MG Oral Capsule
amox_clav|562251|Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet
ciprofloxacin|309309|Ciprofloxacin 500 MG Oral Tablet
""")
}

# key|SNOMED CT code|display
PROCEDURES: dict[str, tuple[str, str]] = {
    r[0]: (r[1], r[2])
    for r in _rows("""
med_reconciliation|430193006|Medication reconciliation (procedure)
depression_screening|171207006|Depression screening (procedure)
needs_assessment|710824005|Assessment of health and social care needs (procedure)
mammography|71651007|Mammography (procedure)
colonoscopy|73761001|Colonoscopy (procedure)
spirometry|23426006|Measurement of respiratory function (procedure)
ecg|29303009|Electrocardiographic procedure (procedure)
chest_xray|399208008|Plain chest X-ray (procedure)
radiography|363680008|Radiographic imaging procedure (procedure)
throat_culture|117015009|Throat culture (procedure)
urine_culture|117010004|Urine culture (procedure)
allergy_test|395142003|Allergy screening test (procedure)
appendectomy|80146002|Appendectomy (procedure)
knee_replacement|609588000|Total knee replacement (procedure)
cesarean|11466000|Cesarean section (procedure)
ablation|18286008|Catheter ablation of tissue of heart (procedure)
""")
}

# CVX code|display
VACCINES: dict[str, str] = {
    r[0]: r[1]
    for r in _rows("""
140|Influenza, seasonal, injectable, preservative free
208|SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose
113|Td (adult) preservative free
115|Tdap
133|Pneumococcal conjugate PCV 13
33|pneumococcal polysaccharide vaccine, 23 valent
187|zoster vaccine recombinant
62|HPV, quadrivalent
08|Hep B, adolescent or pediatric
10|IPV
20|DTaP
03|MMR
21|varicella
83|Hep A, ped/adol, 2 dose
114|meningococcal MCV4P
119|rotavirus, monovalent
49|Hib (PRP-OMP)
""")
}

# (CVX code, age in days) of the childhood schedule (CDC, simplified).
CHILD_SCHEDULE: tuple[tuple[str, int], ...] = (
    ("08", 0), ("08", 30), ("119", 60), ("20", 60), ("49", 60), ("133", 60), ("10", 60), ("119", 120),
    ("20", 120), ("49", 120), ("133", 120), ("10", 120), ("08", 180), ("20", 180), ("133", 180),
    ("10", 180), ("49", 365), ("133", 365), ("03", 365), ("21", 365), ("83", 365), ("20", 450),
    ("83", 545), ("20", 1460), ("10", 1460), ("03", 1460), ("21", 1460), ("115", 4015), ("62", 4015),
    ("114", 4015), ("62", 4200), ("114", 5840),
)  # fmt: skip


class Allergen(NamedTuple):
    """An allergy or intolerance substance with its FHIR category, type and share of high criticality."""

    code: str
    display: str
    category: str
    type: str
    weight: float
    high: float


# SNOMED CT code|display|category|type|weight|share with high criticality
ALLERGENS: tuple[Allergen, ...] = tuple(
    Allergen(r[0], r[1], r[2], r[3], float(r[4]), float(r[5]))
    for r in _rows("""
764146007|Penicillin (substance)|medication|allergy|30|0.3
256259004|Pollen (substance)|environment|allergy|15|0.05
260147004|House dust mite (organism)|environment|allergy|12|0.05
372687004|Amoxicillin (substance)|medication|allergy|8|0.3
264287008|Animal dander (substance)|environment|allergy|8|0.05
387406002|Sulfamethoxazole (substance)|medication|allergy|6|0.3
387207008|Ibuprofen (substance)|medication|intolerance|5|0.1
387458008|Aspirin (substance)|medication|intolerance|5|0.1
3718001|Cow's milk (substance)|food|intolerance|5|0.05
762952008|Peanut (substance)|food|allergy|4|0.6
102263004|Eggs (edible) (substance)|food|allergy|4|0.3
84489001|Mold (organism)|environment|allergy|4|0.05
111088007|Latex (substance)|environment|allergy|3|0.4
288328004|Bee venom (substance)|environment|allergy|2|0.6
""")
)


class EncounterType(NamedTuple):
    """An encounter kind: its v3 ActCode class and SNOMED CT type."""

    act: str
    act_display: str
    code: str
    display: str


ENCOUNTER_TYPES: dict[str, EncounterType] = {
    "checkup": EncounterType("AMB", "ambulatory", "185349003", "Encounter for check up (procedure)"),
    "well_child": EncounterType("AMB", "ambulatory", "410620009", "Well child visit (procedure)"),
    "symptom": EncounterType("AMB", "ambulatory", "185345009", "Encounter for symptom (procedure)"),
    "follow_up": EncounterType("AMB", "ambulatory", "390906007", "Follow-up encounter (procedure)"),
    "emergency": EncounterType("EMER", "emergency", "50849002", "Emergency room admission (procedure)"),
    "inpatient": EncounterType("IMP", "inpatient encounter", "32485007", "Hospital admission (procedure)"),
}
