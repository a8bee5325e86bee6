"""What keeping the standard views in step costs the ingest, and how fast the engine evaluates views.

Same run, same files, two fresh nodes: one with no registered views (the baseline), one with the five
standard views, which are evaluated and written in each Bundle's transaction. Rates are resources per
CPU-second of this process (``time.process_time``; SQLite runs in-process). Then the view engine alone:
rows of all five views over the stored resources per CPU-second, against ``orjson.loads`` of the
same resources.

Usage: python -m benchmarks.views_ingest [--patients N] [--seed S] [--synthea DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import orjson
import sqlalchemy as sa

from node.config import NodeSettings
from node.fhir.ingest import ingest_paths
from node.generator import generate
from node.runtime import init_node, open_service
from node.store.view_rows import registered_views
from node.views.evaluate import evaluate_resource
from node.views.library import standard_views
from node.views.materialise import uninstall_view


def _ingest(files: list[Path], data_dir: Path, *, views: bool) -> tuple[int, float, int]:
    """(resources, CPU seconds, view rows) for one fresh node."""
    settings = NodeSettings(data_dir=data_dir)
    engine, _ = init_node(settings)
    if not views:
        with engine.connect() as conn:
            names = [entry.name for entry in registered_views(conn)]
        for name in names:
            uninstall_view(engine, name)
    engine.dispose()
    service = open_service(settings)
    start = time.process_time()
    summary = ingest_paths(service, files, max_bundle_entries=1_000_000)
    seconds = time.process_time() - start
    with service.engine.connect() as conn:
        rows = int(conn.execute(sa.text("SELECT count(*) FROM view_row")).scalar_one())
        contents = [bytes(r[0]) for r in conn.execute(sa.text("SELECT content FROM fhir_resource"))]
    service.engine.dispose()
    if views:
        _engine_rate(contents)
    return int(summary.as_dict()["stored_total"]), seconds, rows


def _engine_rate(contents: list[bytes]) -> None:
    start = time.process_time()
    resources = [orjson.loads(c) for c in contents]
    parse = time.process_time() - start
    definitions = [view.definition for view in standard_views()]
    start = time.process_time()
    rows = sum(len(evaluate_resource(d, r)) for r in resources for d in definitions if d.resource == r["resourceType"])
    evaluate = time.process_time() - start
    print(f"  view engine: {rows} rows from {len(resources)} resources in {evaluate:.3f} CPU-s")
    print(f"    {len(resources) / evaluate:,.0f} resources/CPU-s evaluated vs {len(resources) / parse:,.0f} parsed")


def main() -> None:
    """Run the comparison on Synthea bundles or generated patients."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--synthea", type=Path, default=None, help="a folder of Synthea bundles instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.synthea is not None:
            files = sorted(args.synthea.glob("*.json"))
            label = f"{len(files)} Synthea bundles"
        else:
            out = root / "generated"
            files = generate(patients=args.patients, seed=args.seed, out=out, fmt="bundle", site="bench").files
            label = f"{args.patients} generated patients"
        base_n, base_s, _ = _ingest(files, root / "plain", views=False)
        view_n, view_s, rows = _ingest(files, root / "views", views=True)
    print(f"{label}: {base_n} resources")
    print(f"  ingest, no views:       {base_n / base_s:8,.0f} resources/CPU-s")
    print(f"  ingest, standard views: {view_n / view_s:8,.0f} resources/CPU-s ({rows} view rows)")
    print(f"  ratio with/without views: {(view_n / view_s) / (base_n / base_s):.2f}")


if __name__ == "__main__":
    main()
