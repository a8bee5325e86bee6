"""Ingest rate of a node, in resources per CPU-second of the ingest process.

Same-run baselines over the same files and resources:
  * ``orjson.loads`` of each file (the floor: parsing alone),
  * ``fhir.resources`` R4B model validation of each resource (R4B as a proxy for R4; what a server
    that validates with the usual Python FHIR models would pay before storing anything).
medfed's figure is the whole ingest: parse, validate, reference rewriting, index extraction and the
SQLite writes (WAL, one transaction per Bundle file), measured with ``time.process_time`` (CPU of this
process, which includes SQLite's work since SQLite runs in-process).

Usage: python -m benchmarks.ingest_rate [--patients N] [--seed S] [--synthea DIR] [--format bundle|ndjson]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class

from node.config import NodeSettings
from node.fhir.ingest import ingest_paths
from node.generator import generate
from node.runtime import init_node, open_service


def _resources(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix == ".ndjson":
        for line in path.read_bytes().splitlines():
            if line.strip():
                yield orjson.loads(line)
        return
    bundle = orjson.loads(path.read_bytes())
    for entry in bundle.get("entry", []):
        yield entry["resource"]


def _cpu(work: Callable[[], int]) -> tuple[int, float]:
    start = time.process_time()
    count = work()
    return count, time.process_time() - start


def measure(files: list[Path], workdir: Path) -> dict[str, float]:
    """Rates (resources per CPU-second) for the three ways of handling ``files``."""

    def parse_only() -> int:
        n = 0
        for path in files:
            data = path.read_bytes()
            if path.suffix == ".ndjson":
                n += sum(1 for line in data.splitlines() if line.strip() and orjson.loads(line))
            else:
                n += len(orjson.loads(data).get("entry", []))
        return n

    def r4b_validation() -> int:
        n = 0
        for path in files:
            for resource in _resources(path):
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
                n += 1
        return n

    settings = NodeSettings(data_dir=workdir / "node")
    init_node(settings)
    service = open_service(settings)

    def medfed_ingest() -> int:
        summary = ingest_paths(service, files, max_bundle_entries=settings.max_bundle_entries)
        if summary.rejected:
            raise SystemExit(f"ingest rejected {len(summary.rejected)} items: {summary.rejected[:3]}")
        return sum(summary.stored.values())

    parsed, parse_cpu = _cpu(parse_only)
    validated, r4b_cpu = _cpu(r4b_validation)
    ingested, ingest_cpu = _cpu(medfed_ingest)
    assert parsed == validated == ingested, (parsed, validated, ingested)
    return {
        "resources": float(ingested),
        "orjson_loads_per_cpu_s": parsed / parse_cpu,
        "fhir_resources_r4b_per_cpu_s": validated / r4b_cpu,
        "medfed_ingest_per_cpu_s": ingested / ingest_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=["bundle", "ndjson"], default="bundle")
    parser.add_argument("--synthea", type=Path, help="a folder of Synthea bundles to use instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medfed-bench-") as tmp:
        work = Path(tmp)
        if args.synthea:
            files = sorted(args.synthea.glob("*.json"))
            source = f"{len(files)} Synthea bundles from {args.synthea}"
        else:
            generate(patients=args.patients, seed=args.seed, out=work / "data", fmt=args.format)
            files = sorted((work / "data").iterdir())
            source = f"{args.patients} generated patients (seed {args.seed}, {args.format})"
        rates = measure(files, work)
    print(f"ingest rate over {int(rates['resources'])} resources: {source}")
    print(f"  orjson.loads (parse only)        {rates['orjson_loads_per_cpu_s']:>12,.0f} resources/CPU-s")
    print(f"  fhir.resources R4B validation    {rates['fhir_resources_r4b_per_cpu_s']:>12,.0f} resources/CPU-s")
    print(f"  medfed ingest (SQLite, indexed)  {rates['medfed_ingest_per_cpu_s']:>12,.0f} resources/CPU-s")
    ratio = rates["medfed_ingest_per_cpu_s"] / rates["fhir_resources_r4b_per_cpu_s"]
    print(f"  ratio medfed / fhir.resources R4B: {ratio:.1f}x")
    parse_ratio = rates["medfed_ingest_per_cpu_s"] / rates["orjson_loads_per_cpu_s"]
    print(f"  ratio medfed / orjson.loads:       {parse_ratio:.3f}x")


if __name__ == "__main__":
    main()
