"""What an audit-chain append costs per API call, against the plain audit insert it replaced.

Every call with a token is now an entry of the hash-chained, signed audit log (``node/audit``): lock
the head row, canonical JSON, SHA-256, HMAC of the subject, Ed25519 signature, insert, move the head,
commit. The baseline is the pre-chain ``access_audit`` insert (one row, one commit) on the same
database. Both run interleaved in rounds, so machine load hits both alike; medians per append.

    .venv/bin/python -m benchmarks.audit_append [--appends 2000] [--rounds 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from node.audit import AuditLog
from node.store.audit import AuditEvent, record
from node.store.db import make_engine
from node.store.migrate import upgrade


def main() -> None:
    """Run the rounds and print µs per append for both, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--database-url", default=None, help="an empty database to migrate and fill (default: SQLite in a temp folder)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'node.db'}"
        engine = make_engine(url)
        upgrade(engine)
        log = AuditLog.open(engine, Path(folder))
        chain_us: list[float] = []
        plain_us: list[float] = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            for i in range(args.appends):
                log.api_call(
                    actor="token:1:clinician",
                    action="fhir.read",
                    status=200,
                    resource_type="Patient",
                    resource_ref=f"Patient/{i}",
                    result_count=1,
                )
            chain_us.append((time.perf_counter() - started) / args.appends * 1e6)
            started = time.perf_counter()
            for i in range(args.appends):
                record(
                    engine,
                    AuditEvent(
                        token_id=1,
                        role="clinician",
                        action="fhir.read",
                        resource_type="Patient",
                        resource_id=str(i),
                        status=200,
                        result_count=1,
                    ),
                )
            plain_us.append((time.perf_counter() - started) / args.appends * 1e6)
        engine.dispose()
    chain, plain = statistics.median(chain_us), statistics.median(plain_us)
    print(f"database: {engine.dialect.name}; {args.rounds} rounds x {args.appends} appends each")
    print(f"plain access_audit insert: {plain:7.1f} us/append (median of rounds)")
    print(f"audit chain append:        {chain:7.1f} us/append (median of rounds)")
    print(f"ratio chain / plain: {chain / plain:.2f}")


if __name__ == "__main__":
    main()
