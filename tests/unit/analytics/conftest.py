"""The real data split by node as the issue says, loaded as tabular datasets with the shipped schemas.

* Fed-Heart-Disease: 4 nodes, one per ``processed.<center>.data`` file (FLamby's center order), read
  with ``benchmarks/datasets/fed_heart_disease.schema.yaml`` (``?`` and ``chol = 0`` are missing).
* Fed-TCGA-BRCA: 6 nodes, FLamby's regions (``fold2`` of ``train_test_split.csv``, train and test
  together); the 8 patients FLamby never uses ("Other" region) are left out.
* Synthea: 3 nodes by ``suggested_site`` of ``patients_index.csv``; one row per patient with its number
  of encounters, age (years at death or at 2021-06-01) and sex, parsed from the bundle JSON here.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from node.datasets.loader import load_table
from node.datasets.schema import load_schema
from tests.unit.analytics.reference import HEART_CENTERS

REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = REPO_ROOT / "benchmarks" / "datasets"
SYNTHEA_REFERENCE_DATE = date(2021, 6, 1)


@pytest.fixture(scope="session")
def heart_nodes(shared_data: Path) -> list[pd.DataFrame]:
    """Fed-Heart-Disease, one table per hospital file."""
    schema = load_schema(SCHEMAS / "fed_heart_disease.schema.yaml")
    folder = shared_data / "fed_heart_disease"
    return [load_table(folder / f"processed.{center}.data", schema) for center in HEART_CENTERS]


@pytest.fixture(scope="session")
def tcga_nodes(shared_data: Path) -> list[pd.DataFrame]:
    """Fed-TCGA-BRCA, one table per FLamby region (center 0..5)."""
    folder = shared_data / "fed_tcga_brca"
    table = load_table(folder / "brca.csv", load_schema(SCHEMAS / "fed_tcga_brca.schema.yaml"))
    split = pd.read_csv(folder / "train_test_split.csv")
    center = dict(zip(split["pid"], split["fold2"].str.rsplit("_", n=1).str[1].astype(int), strict=True))
    table = table.assign(center=table["pid"].map(center))
    nodes = [table[table["center"] == c].drop(columns="center").reset_index(drop=True) for c in range(6)]
    assert [len(n) for n in nodes] == [311, 196, 206, 162, 162, 51]
    return nodes


def _patient_row(bundle: Path) -> dict[str, float]:
    entries = json.loads(bundle.read_text(encoding="utf-8"))["entry"]
    resources = [entry["resource"] for entry in entries]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    born = date.fromisoformat(patient["birthDate"])
    end = date.fromisoformat(patient["deceasedDateTime"][:10]) if "deceasedDateTime" in patient else None
    age = ((end or SYNTHEA_REFERENCE_DATE) - born).days / 365.25
    return {
        "encounters": float(sum(r["resourceType"] == "Encounter" for r in resources)),
        "age": age,
        "sex": 1.0 if patient["gender"] == "male" else 0.0,
    }


@pytest.fixture(scope="session")
def synthea_nodes(shared_data: Path, synthea_bundles: list[Path]) -> list[pd.DataFrame]:
    """Encounters per patient with age and sex, split over 3 nodes by the suggested site."""
    index = pd.read_csv(shared_data / "synthea_fhir_r4" / "patients_index.csv")
    site = dict(zip(index["file"], index["suggested_site"], strict=True))
    rows: dict[str, list[dict[str, float]]] = {"site_0": [], "site_1": [], "site_2": []}
    for bundle in synthea_bundles:
        rows[site[bundle.name]].append(_patient_row(bundle))
    return [pd.DataFrame(rows[name]) for name in ("site_0", "site_1", "site_2")]
