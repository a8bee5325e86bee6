"""``medfed demo``: a working node on this machine in one command.

It generates the project's own synthetic patients, initialises a node on SQLite, loads them, creates
a read-only (clinician) token and serves the FHIR API until interrupted. (The coordinator issue
extends the demo to a coordinator with three nodes and federated jobs.)
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path

from node.config import NodeSettings
from node.fhir.ingest import ingest_paths
from node.generator import generate
from node.runtime import init_node, open_service, serve
from node.store.tokens import Role, create_token

__all__ = ["run_demo"]


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def run_demo(
    *,
    root: Path,
    patients: int,
    seed: int,
    host: str,
    port: int,
    say: Callable[[str], None],
) -> None:
    """Set up (or reuse) a demo node under ``root`` and serve it in the foreground."""
    settings = NodeSettings(data_dir=root / "node", host=host, port=port or _free_port(host))
    fresh = not (settings.data_dir / "node.db").exists()
    init_node(settings)
    service = open_service(settings)
    if fresh:
        say(f"generating {patients} synthetic patients (seed {seed}) ...")
        generated = generate(patients=patients, seed=seed, out=root / "generated", fmt="ndjson")
        say(f"loading {sum(generated.resources.values())} resources into the node ...")
        summary = ingest_paths(service, [root / "generated"], max_bundle_entries=settings.max_bundle_entries)
        say(f"loaded {sum(summary.stored.values())} resources, {len(summary.rejected)} rejected")
    else:
        say(f"reusing the demo node in {settings.data_dir}")
    _, token = create_token(service.engine, Role.CLINICIAN, "demo")
    service.engine.dispose()
    base = f"http://{settings.host}:{settings.port}/fhir"
    say(f"FHIR API: {base}")
    say(f"token (clinician, read-only): {token}")
    say(f'try: curl -H "Authorization: Bearer {token}" "{base}/Patient?_count=5"')
    say("stop with Ctrl-C")
    sys.stdout.flush()
    serve(settings)
