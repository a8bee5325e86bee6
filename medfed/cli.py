"""The one ``medfed`` command.

Exit codes (so systemd and scripts can tell a bad configuration from a failure):
  0  success
  1  runtime error (the command ran and failed; retrying may help)
  2  usage error (unknown option, missing argument)
  3  configuration error (a setting, path or database URL is wrong; retrying will not help)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.errors import AccessError, ConfigError, InputError, MedfedError
from coordinator.config import CoordinatorSettings
from node.config import NodeSettings

EXIT_RUNTIME = 1
EXIT_CONFIG = 3

app = typer.Typer(no_args_is_help=True, add_completion=False, help="medfed: a federated health-data network.")
node_app = typer.Typer(no_args_is_help=True, help="Run and administer a hospital node.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens for the node's local users.")
app.add_typer(node_app, name="node")
node_app.add_typer(token_app, name="token")
coordinator_app = typer.Typer(no_args_is_help=True, help="Run and administer the coordinator.")
coordinator_token_app = typer.Typer(no_args_is_help=True, help="API tokens for the coordinator's users.")
app.add_typer(coordinator_app, name="coordinator")
coordinator_app.add_typer(coordinator_token_app, name="token")
console = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="The node's data directory [env: MEDFED_NODE_DATA_DIR]."),
]


def _settings(data_dir: Path | None, **overrides: object) -> NodeSettings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return NodeSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors())
        raise ConfigError(detail=f"invalid settings: {fields}") from None


def _fail(exc: MedfedError) -> typer.Exit:
    code = EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_RUNTIME
    hints = "; ".join(exc.hints)
    console.print(f"[red]error:[/red] {exc.detail or exc.public_message}" + (f" ({hints})" if hints else ""))
    return typer.Exit(code)


@node_app.command("init")
def node_init(data_dir: DataDir = None) -> None:
    """Create the node's data directory and database (safe to run again: it migrates)."""
    from node.runtime import init_node

    try:
        settings = _settings(data_dir)
        _, revision = init_node(settings)
    except MedfedError as exc:
        raise _fail(exc) from None
    console.print(f"node initialised in {settings.data_dir} (schema {revision})")


@node_app.command("start")
def node_start(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8080].")] = None,
) -> None:
    """Serve the node's FHIR API."""
    from node.runtime import serve

    try:
        serve(_settings(data_dir, host=host, port=port))
    except MedfedError as exc:
        raise _fail(exc) from None


@node_app.command("ingest")
def node_ingest(
    paths: Annotated[list[Path], typer.Argument(help="Bundle .json files, .ndjson files or folders.")],
    data_dir: DataDir = None,
) -> None:
    """Load FHIR transaction/batch Bundles and NDJSON into the node, then print a data-quality summary."""
    from node.fhir.ingest import ingest_paths
    from node.runtime import open_service

    try:
        settings = _settings(data_dir)
        service = open_service(settings)
        with Progress(
            TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("ingest", total=None)
            summary = ingest_paths(
                service,
                paths,
                max_bundle_entries=settings.max_bundle_entries,
                progress=lambda n: bar.advance(task, n),
            )
    except MedfedError as exc:
        raise _fail(exc) from None
    result = summary.as_dict()
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    if result["rejected"]:
        console.print(f"[yellow]{len(result['rejected'])} item(s) rejected; see 'rejected'[/yellow]")


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="clinician (read) or admin (read and write).")],
    data_dir: DataDir = None,
    label: Annotated[str, typer.Option(help="A note for whom the token is (stored, not secret).")] = "",
) -> None:
    """Create an API token and print it once; only its hash is stored."""
    from node.runtime import open_service
    from node.store.tokens import Role, create_token

    if role not in {r.value for r in Role}:
        console.print("[red]error:[/red] --role must be clinician or admin")
        raise typer.Exit(2)
    try:
        service = open_service(_settings(data_dir))
        token_id, token = create_token(service.engine, Role(role), label)
    except MedfedError as exc:
        raise _fail(exc) from None
    console.print(f"token {token_id} ({role}) created; it is shown only now:")
    sys.stdout.write(token + "\n")


@node_app.command("generate")
def node_generate(
    patients: Annotated[int, typer.Option(min=1, max=10_000_000, help="How many patients.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 1,
    fmt: Annotated[str, typer.Option("--format", help="bundle or ndjson.")] = "bundle",
    site: Annotated[str, typer.Option(help="Site name: different sites get different people.")] = "site-a",
    patients_per_bundle: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """Write synthetic patients as FHIR R4 transaction Bundles or NDJSON."""
    from node.generator import generate

    if fmt not in ("bundle", "ndjson"):
        console.print("[red]error:[/red] --format must be bundle or ndjson")
        raise typer.Exit(2)
    if out.exists() and any(out.iterdir()):
        console.print("[red]error:[/red] --out must be a new or empty folder (old files would mix in)")
        raise typer.Exit(2)
    chosen: Literal["bundle", "ndjson"] = "bundle" if fmt == "bundle" else "ndjson"
    with Progress(
        TextColumn("generate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("generate", total=patients)
        summary = generate(
            patients=patients,
            seed=seed,
            out=out,
            fmt=chosen,
            patients_per_bundle=patients_per_bundle,
            site=site,
            progress=lambda done: bar.update(task, completed=done),
        )
    total = sum(summary.resources.values())
    console.print(f"{summary.patients} patients, {total} resources in {len(summary.files)} file(s) under {out}")


@node_app.command("enrol")
def node_enrol(
    code: Annotated[str, typer.Argument(help="The one-time code from medfed coordinator enrol-code.")],
    data_dir: DataDir = None,
    coordinator: Annotated[
        str | None,
        typer.Option("--coordinator", help="The coordinator's https:// URL [default: the code's, else LAN discovery]."),
    ] = None,
    discovery_timeout: Annotated[
        float, typer.Option(min=0.1, max=120, help="Seconds to look for the coordinator on the LAN.")
    ] = 5.0,
) -> None:
    """Enrol this node with a coordinator: pin its CA from the code, register new keys, store the identity.

    Exit codes: 0 enrolled; 1 no coordinator reachable (retry may help); 2 not an enrolment code;
    3 the node is not initialised or enrolled already, the coordinator's identity does not match the
    code, or the coordinator refused the code (used, expired, unknown). Nothing is written unless it
    succeeds.
    """
    from node.identity import enrol
    from node.runtime import open_service

    try:
        settings = _settings(data_dir)
        open_service(settings).engine.dispose()  # the node must be initialised
        identity = enrol(
            settings.data_dir,
            code,
            version=_medfed_version(),
            coordinator_url=coordinator,
            discovery_timeout_s=discovery_timeout,
        )
    except InputError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from None
    except AccessError as exc:
        console.print(f"[red]error:[/red] the coordinator refused the enrolment ({exc.detail})")
        raise typer.Exit(EXIT_CONFIG) from None
    except MedfedError as exc:
        raise _fail(exc) from None
    console.print(  # markup off: an IPv6 URL's [brackets] are not rich markup
        f"enrolled as {identity.node_id} with {identity.coordinator_url} (CA {identity.ca_fingerprint})",
        markup=False,
        soft_wrap=True,
    )


def _medfed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medfed")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


CoordinatorDataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="The coordinator's data directory [env: MEDFED_COORDINATOR_DATA_DIR]."),
]


def _coordinator_settings(data_dir: Path | None, **overrides: object) -> CoordinatorSettings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return CoordinatorSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) or "settings" for err in exc.errors())
        raise ConfigError(detail=f"invalid settings: {fields}") from None


@coordinator_app.command("init")
def coordinator_init(
    data_dir: CoordinatorDataDir = None,
    hostname: Annotated[
        list[str] | None,
        typer.Option(
            "--hostname", help="A DNS name nodes dial, for the TLS certificate (repeatable) [default: localhost]."
        ),
    ] = None,
    ip: Annotated[
        list[str] | None,
        typer.Option(
            "--ip", help="An IP address nodes dial, for the TLS certificate (repeatable) [default: 127.0.0.1]."
        ),
    ] = None,
) -> None:
    """Create the coordinator's data directory (0700), database, signing key, CA and TLS certificate.

    Safe to run again: it migrates the database and creates only what is missing (an existing
    certificate keeps its names; delete tls/server.pem and tls/server.key to re-issue it).
    """
    from coordinator.identity import DEFAULT_HOSTNAMES, DEFAULT_IP_ADDRESSES, CoordinatorIdentity
    from coordinator.runtime import init_coordinator

    try:
        settings = _coordinator_settings(data_dir)
        engine, revision = init_coordinator(
            settings,
            hostnames=hostname or DEFAULT_HOSTNAMES,
            ip_addresses=ip or DEFAULT_IP_ADDRESSES,
        )
        engine.dispose()
        fingerprint = CoordinatorIdentity.load(settings.data_dir).ca_fingerprint
    except InputError as exc:
        console.print(f"[red]error:[/red] --hostname/--ip: {exc.detail}")
        raise typer.Exit(2) from None
    except MedfedError as exc:
        raise _fail(exc) from None
    console.print(f"coordinator initialised in {settings.data_dir} (schema {revision})")
    console.print(f"CA fingerprint: {fingerprint}", soft_wrap=True)


@coordinator_app.command("start")
def coordinator_start(
    data_dir: CoordinatorDataDir = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8443].")] = None,
    no_advertise: Annotated[
        bool, typer.Option("--no-advertise", help="Do not announce the coordinator on the LAN (zeroconf).")
    ] = False,
    advertise_address: Annotated[
        list[str] | None,
        typer.Option(
            "--advertise-address", help="An IP address to announce on the LAN (repeatable) [default: --host]."
        ),
    ] = None,
) -> None:
    """Serve the coordinator's API over HTTPS (the certificate from init), announced on the LAN unless told not to."""
    from coordinator.runtime import serve

    try:
        serve(
            _coordinator_settings(
                data_dir,
                host=host,
                port=port,
                advertise=False if no_advertise else None,
                advertise_addresses=advertise_address or None,
            )
        )
    except MedfedError as exc:
        raise _fail(exc) from None


@coordinator_token_app.command("create")
def coordinator_token_create(
    role: Annotated[str, typer.Option(help="admin, researcher or observer.")],
    data_dir: CoordinatorDataDir = None,
    label: Annotated[str, typer.Option(help="A note for whom the token is (stored, not secret).")] = "",
) -> None:
    """Create an API token and print it once; only its hash is stored."""
    from coordinator.runtime import open_engine
    from coordinator.store.tokens import Role, create_token

    if role not in {r.value for r in Role}:
        console.print("[red]error:[/red] --role must be admin, researcher or observer")
        raise typer.Exit(2)
    try:
        engine = open_engine(_coordinator_settings(data_dir))
        token_id, token = create_token(engine, role=Role(role), label=label)
        engine.dispose()
    except MedfedError as exc:
        raise _fail(exc) from None
    console.print(f"token {token_id} ({role}) created; it is shown only now:")
    sys.stdout.write(token + "\n")


@coordinator_app.command("enrol-code")
def coordinator_enrol_code(
    node: Annotated[str, typer.Option("--node", help="The name the node will enrol under.")],
    data_dir: CoordinatorDataDir = None,
    public_url: Annotated[
        str | None,
        typer.Option("--public-url", help="The URL nodes dial, put in the code [default: the public_url setting]."),
    ] = None,
) -> None:
    """Create a one-time enrolment code for a node and print it once; only its secret's hash is stored.

    The code carries the coordinator's CA fingerprint (the node pins it) and its URL.
    """
    from datetime import UTC, datetime

    from coordinator.identity import CoordinatorIdentity
    from coordinator.runtime import open_engine
    from coordinator.store.enrolment import create_enrolment_code

    try:
        settings = _coordinator_settings(data_dir, public_url=public_url)
        engine = open_engine(settings)
        try:
            identity = CoordinatorIdentity.load(settings.data_dir)
            issued = create_enrolment_code(
                engine,
                node_name=node,
                ttl_s=settings.enrol_code_ttl_s,
                fingerprint=identity.ca_fingerprint,
                public_url=settings.public_base_url,
            )
        finally:
            engine.dispose()
    except InputError as exc:
        console.print(f"[red]error:[/red] --node: {exc.detail}")
        raise typer.Exit(2) from None
    except MedfedError as exc:
        raise _fail(exc) from None
    expires = datetime.fromtimestamp(issued.expires_at / 1_000_000, tz=UTC).isoformat(timespec="seconds")
    console.print(f"enrolment code for {issued.node_name!r} (valid until {expires}); it is shown only now:")
    sys.stdout.write(issued.code + "\n")


@app.command("demo")
def demo(
    root: Annotated[Path, typer.Option("--dir", help="Where the demo keeps its data.")] = Path("demo-data"),
    patients: Annotated[int, typer.Option(min=1, max=100_000)] = 500,
    seed: Annotated[int, typer.Option()] = 42,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="0 picks a free port.")] = 8080,
) -> None:
    """Run a demo node with generated patients and print where its FHIR API is."""
    from medfed.demo import run_demo

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        run_demo(root=root, patients=patients, seed=seed, host=host, port=port, say=say)
    except MedfedError as exc:
        raise _fail(exc) from None


def main() -> None:
    """Entry point of the ``medfed`` console script."""
    app()
