"""A patient's research opt-out (a deny Consent, purpose HRESCH) keeps them out of what federated jobs read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from node.federation.service import count_research_patients
from node.federation.sources import load_view_source
from node.fhir.service import FhirService
from node.store.db import make_engine
from node.views.materialise import install_standard_views
from tests.locator_data import opt_out_consent, patient


@pytest.fixture
def service(database_url: str) -> Iterator[FhirService]:
    """A FhirService over the migrated test database with the standard views installed."""
    engine = make_engine(database_url)
    install_standard_views(engine)
    yield FhirService(engine)
    engine.dispose()


def test_research_opt_outs_are_neither_counted_nor_in_view_rows(service: FhirService) -> None:
    """After an HRESCH deny Consent the patient leaves the count and the view; a sharing opt-out does not."""
    ids = [service.create(patient(given=name)).stored.id for name in ("Ada", "Grace", "Edith")]
    before = load_view_source(service.engine, "patient_demographics")
    assert count_research_patients(service) == 3
    assert len(before.frame) == 3

    service.create(opt_out_consent(ids[0], purpose="HRESCH"))
    service.create(opt_out_consent(ids[1], purpose="TREAT"))  # sharing only: research may still read it
    after = load_view_source(service.engine, "patient_demographics")

    assert count_research_patients(service) == 2
    assert sorted(after.frame["patient_id"]) == sorted(ids[1:])
    assert after.snapshot != before.snapshot
