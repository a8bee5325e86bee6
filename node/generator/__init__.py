"""medfed's own synthetic patient generator: realistic, deterministic FHIR R4 records at scale.

Public API::

    generate(patients=N, seed=S, out=DIR, fmt="bundle" | "ndjson") -> GenerationSummary
    iter_patients(patients=N, seed=S, site="site-a") -> Iterator[list[resource dict]]

Modules, from data to output::

    names, catalog, labs   code tables, name lists and the frequencies behind them (with sources)
    sampling, clock        weighted draws and UUIDs from random.Random; the fixed reference date
    people                 demographics and the Patient resource; record-linkage perturbations
    visits, orders         chronic conditions, the visit calendar, what is measured at a visit
    physiology             plausible values by age, sex and condition
    clinical, prevention   the resources of each visit; immunizations and allergies
    resources              FHIR R4 resource builders
    record                 one patient at one site, deterministic for (seed, site, index)
    writer                 transaction Bundles or NDJSON on disk, streaming
"""

from __future__ import annotations

from node.generator.record import linkage_key
from node.generator.writer import GenerationSummary, generate, iter_patients

__all__ = ["GenerationSummary", "generate", "iter_patients", "linkage_key"]
