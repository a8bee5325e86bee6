"""Writing generated patients to disk as FHIR transaction Bundles or NDJSON, streaming.

Memory stays constant: at most one batch of ``patients_per_bundle`` patients is held at a time. Files
are written with orjson in a fixed order, so equal arguments give byte-identical files.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from common.errors import InputError
from node.generator.record import check_site, patient_resources

__all__ = ["GenerationSummary", "generate", "iter_patients"]

_BUNDLE_HEAD = b'{"resourceType":"Bundle","type":"transaction","entry":['


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate` wrote: the number of patients, resources per type and the files."""

    patients: int
    resources: dict[str, int]  # count per resourceType, sorted by type
    files: list[Path]


def _check(*, patients: int, site: str, fmt: str = "bundle", patients_per_bundle: int = 1) -> None:
    hints = []
    if isinstance(patients, bool) or not isinstance(patients, int) or patients < 0:
        hints.append("patients: a whole number of at least 0")
    if fmt not in ("bundle", "ndjson"):
        hints.append("format: bundle or ndjson")
    if isinstance(patients_per_bundle, bool) or not isinstance(patients_per_bundle, int) or patients_per_bundle < 1:
        hints.append("patients_per_bundle: a whole number of at least 1")
    if hints:
        raise InputError(hints=hints)
    check_site(site)


def iter_patients(*, patients: int, seed: int, site: str = "site-a") -> Iterator[list[dict[str, Any]]]:
    """Yield each patient's FHIR R4 resources (the Patient first) with ``<Type>/<id>`` references.

    Patient ``i`` depends only on ``(seed, site, i)``: the first ten of a million are the first ten.
    """
    _check(patients=patients, site=site)  # here, not at the first next(): bad arguments fail at the call
    return (patient_resources(seed, site, index) for index in range(patients))


def generate(
    *,
    patients: int,
    seed: int,
    out: Path,
    fmt: Literal["bundle", "ndjson"] = "bundle",
    patients_per_bundle: int = 100,
    site: str = "site-a",
    progress: Callable[[int], None] | None = None,
) -> GenerationSummary:
    """Write ``patients`` synthetic patients of ``site`` into ``out`` (created if missing).

    ``fmt="bundle"``: transaction Bundles ``bundle-000001.json``, ... of ``patients_per_bundle`` patients,
    each entry with a ``urn:uuid:`` fullUrl, ``POST <Type>`` and references to those fullUrls.
    ``fmt="ndjson"``: one ``<Type>.ndjson`` per resource type, references ``<Type>/<id>``.
    ``progress`` is called with the number of patients written so far after every batch of
    ``patients_per_bundle`` patients (the unit of writing in both formats).
    Files of an earlier run that this run does not write are left in place.
    """
    _check(patients=patients, site=site, fmt=fmt, patients_per_bundle=patients_per_bundle)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    # The generator makes no reference cycles, so reference counting frees everything; the cyclic
    # collector would only rescan the live batch of resources over and over (about 40 % of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        if fmt == "bundle":
            files = _write_bundles(patients, seed, site, out, patients_per_bundle, counts, progress)
        else:
            files = _write_ndjson(patients, seed, site, out, patients_per_bundle, counts, progress)
    finally:
        if collecting:
            gc.enable()
    return GenerationSummary(patients=patients, resources=dict(sorted(counts.items())), files=files)


def _write_bundles(
    patients: int,
    seed: int,
    site: str,
    out: Path,
    per_bundle: int,
    counts: Counter[str],
    progress: Callable[[int], None] | None,
) -> list[Path]:
    files = []
    for number, first in enumerate(range(0, patients, per_bundle), start=1):
        path = out / f"bundle-{number:06d}.json"
        # Written patient by patient: the bytes are those of orjson.dumps of the whole Bundle, without
        # holding a bundle-sized string in memory.
        with path.open("wb") as handle:
            handle.write(_BUNDLE_HEAD)
            for index in range(first, min(first + per_bundle, patients)):
                resources = patient_resources(seed, site, index, urn=True)
                counts.update(resource["resourceType"] for resource in resources)
                entries = orjson.dumps(
                    [
                        {
                            "fullUrl": "urn:uuid:" + resource["id"],
                            "resource": resource,
                            "request": {"method": "POST", "url": resource["resourceType"]},
                        }
                        for resource in resources
                    ]
                )
                if index > first:
                    handle.write(b",")
                handle.write(entries[1:-1])
            handle.write(b"]}")
        files.append(path)
        if progress is not None:
            progress(min(first + per_bundle, patients))
    return files


def _write_ndjson(
    patients: int,
    seed: int,
    site: str,
    out: Path,
    batch: int,
    counts: Counter[str],
    progress: Callable[[int], None] | None,
) -> list[Path]:
    handles: dict[str, BinaryIO] = {}
    with ExitStack() as stack:
        for first in range(0, patients, batch):
            lines: dict[str, list[bytes]] = {}
            for index in range(first, min(first + batch, patients)):
                for resource in patient_resources(seed, site, index):
                    resource_type = resource["resourceType"]
                    lines.setdefault(resource_type, []).append(orjson.dumps(resource, option=orjson.OPT_APPEND_NEWLINE))
            for resource_type, chunk in lines.items():
                handle = handles.get(resource_type)
                if handle is None:
                    handle = handles[resource_type] = stack.enter_context((out / f"{resource_type}.ndjson").open("wb"))
                handle.write(b"".join(chunk))
                counts[resource_type] += len(chunk)
            if progress is not None:
                progress(min(first + batch, patients))
    return sorted(out / f"{resource_type}.ndjson" for resource_type in handles)
