"""Search latency at scale: p50/p95 of FHIR searches over >= 1M Observations on SQLite.

Queries, each computing ``Bundle.total`` and returning the first page of 50:
  * ``Observation?patient=P&code=C``  — one patient's results for one lab (the clinician's query),
  * ``Observation?code=C&date=geD``   — a cohort query, for codes at the 50th, 90th and 99th percentile
    of code frequency and date windows covering 1%, 10% and 50% of the Observations.
medfed's figure runs through :class:`node.fhir.service.FhirService` (parse, count, page, load JSON), in
process, so it measures the store and query engine rather than HTTP.

Same-run baseline: the same questions asked of a hand-made, purpose-built SQLite table
``obs(patient, code, date, id)`` with exactly the two composite indexes these queries need, in the same
database file — the floor a generic FHIR index cannot beat. The ratio medfed/baseline says what the
generality costs.

The node database is built once (generated patients, NDJSON ingest) and cached under --workdir.
Usage: python -m benchmarks.search_latency [--observations 1000000] [--workdir DIR] [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from node.config import NodeSettings
from node.fhir.dates import fhir_range
from node.fhir.ingest import ingest_paths
from node.fhir.service import FhirService
from node.generator import generate
from node.runtime import init_node, open_service

OBS_PER_PATIENT_GUESS = 40


def _build(workdir: Path, observations: int, seed: int) -> FhirService:
    settings = NodeSettings(data_dir=workdir / f"node-{observations}-{seed}")
    ready = settings.data_dir / "READY"
    init_node(settings)
    service = open_service(settings)
    if ready.exists():
        return service
    patients = max(observations // OBS_PER_PATIENT_GUESS, 10)
    total = 0
    batch = 0
    while total < observations:
        out = workdir / f"gen-{seed}-{batch}"
        summary = generate(patients=patients, seed=seed * 1000 + batch, out=out, fmt="ndjson")
        started = time.perf_counter()
        ingest_paths(service, [out], max_bundle_entries=settings.max_bundle_entries)
        total += summary.resources.get("Observation", 0)
        print(
            f"  loaded batch {batch}: {sum(summary.resources.values()):,} resources "
            f"in {time.perf_counter() - started:.0f} s; {total:,} Observations so far",
            flush=True,
        )
        for path in out.iterdir():
            path.unlink()
        out.rmdir()
        patients = max((observations - total) // OBS_PER_PATIENT_GUESS + 1, 10)
        batch += 1
    with service.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS bench_obs"))
        conn.execute(
            sa.text("CREATE TABLE bench_obs (id TEXT, patient TEXT, code TEXT, date_low INTEGER, date_high INTEGER)")
        )
        conn.execute(
            sa.text(
                "INSERT INTO bench_obs SELECT t.resource_id, r.target_id, t.code, t.date_low, t.date_high "
                "FROM search_token t JOIN search_reference r ON r.resource_type = t.resource_type "
                "AND r.resource_id = t.resource_id AND r.param = 'patient' "
                "WHERE t.resource_type = 'Observation' AND t.param = 'code' AND t.system = 'http://loinc.org'"
            )
        )
        conn.execute(sa.text("CREATE INDEX bench_obs_pc ON bench_obs (patient, code, id)"))
        conn.execute(sa.text("CREATE INDEX bench_obs_cd ON bench_obs (code, date_high, id)"))
        conn.execute(sa.text("ANALYZE"))
    ready.touch()
    return service


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm the page cache
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "medfed-bench")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    service = _build(args.workdir, args.observations, args.seed)
    with service.engine.connect() as conn:
        n_obs = conn.execute(sa.text("SELECT count(*) FROM bench_obs")).scalar_one()
        freq = conn.execute(sa.text("SELECT code, count(*) AS n FROM bench_obs GROUP BY code ORDER BY n, code")).all()
        highs = [row[0] for row in conn.execute(sa.text("SELECT date_high FROM bench_obs ORDER BY date_high"))]
        pairs = conn.execute(
            sa.text("SELECT patient, code FROM bench_obs ORDER BY random() LIMIT :n"), {"n": args.repeat}
        ).all()
    print(f"{n_obs:,} Observations (LOINC-coded), {len(freq)} distinct codes; {args.repeat} runs per query")
    print(f"{'query':58} {'matches':>9} {'medfed p50/p95 ms':>19} {'baseline p50/p95 ms':>21} {'ratio p95':>9}")

    def report(label: str, params: list[tuple[str, str]], baseline_sql: str, bind: dict[str, object]) -> None:
        query = service.parse("Observation", params)
        total = service.search(query).total
        ours = _timed(lambda: service.search(service.parse("Observation", params)), args.repeat)
        with service.engine.connect() as conn:

            def baseline() -> None:
                conn.execute(sa.text(f"SELECT count(*) FROM ({baseline_sql})"), bind).scalar_one()  # noqa: S608
                conn.execute(sa.text(baseline_sql + " ORDER BY id LIMIT 50"), bind).all()

            base = _timed(baseline, args.repeat)
        print(
            f"{label:58} {total:>9,} {_p(ours, 50):>8.2f}/{_p(ours, 95):<8.2f}"
            f"   {_p(base, 50):>8.2f}/{_p(base, 95):<8.2f}  {_p(ours, 95) / _p(base, 95):>8.1f}x"
        )

    # Patient + code: a sample of real (patient, code) pairs, timed together as one query each.
    patient_ms: list[float] = []
    base_ms: list[float] = []
    pair_sql = "SELECT id FROM bench_obs WHERE patient = :p AND code = :c"
    with service.engine.connect() as conn:
        for patient, code in pairs:
            params = [("patient", patient), ("code", f"http://loinc.org|{code}")]

            def run_ours(p: list[tuple[str, str]] = params) -> None:
                service.search(service.parse("Observation", p))

            patient_ms += _timed(run_ours, 1)
            bind = {"p": patient, "c": code}

            def run_base(b: dict[str, str] = bind) -> None:
                conn.execute(sa.text(f"SELECT count(*) FROM ({pair_sql})"), b).scalar_one()  # noqa: S608
                conn.execute(sa.text(pair_sql + " ORDER BY id LIMIT 50"), b).all()

            base_ms += _timed(run_base, 1)
    print(
        f"{'Observation?patient=P&code=C (random pairs)':58} {'-':>9} "
        f"{_p(patient_ms, 50):>8.2f}/{_p(patient_ms, 95):<8.2f}"
        f"   {_p(base_ms, 50):>8.2f}/{_p(base_ms, 95):<8.2f}"
        f"  {_p(patient_ms, 95) / _p(base_ms, 95):>8.1f}x"
    )
    for pct in (50, 90, 99):
        code, count = freq[min(len(freq) - 1, round(pct / 100 * (len(freq) - 1)))]
        for window in (0.01, 0.10, 0.50):
            cutoff = highs[int(len(highs) * (1 - window))]
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cutoff / 1_000_000))
            low = fhir_range(when)[0]
            report(
                f"code p{pct} ({count:,} obs) & date ge (window {window:.0%})",
                [("code", f"http://loinc.org|{code}"), ("date", f"ge{when}")],
                "SELECT id FROM bench_obs WHERE code = :c AND date_high > :d",
                {"c": code, "d": low},
            )


if __name__ == "__main__":
    main()
