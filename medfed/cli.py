"""The one ``medfed`` command.

Exit codes (so systemd and scripts can tell a bad configuration from a failure):
  0  success
  1  runtime error (the command ran and failed; retrying may help)
  2  usage error (unknown option, missing argument)
  3  configuration error (a setting, path or database URL is wrong; retrying will not help)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from common.errors import AccessError, ConfigError, InputError, MedfedError
from coordinator.config import CoordinatorSettings
from node.config import NodeSettings

if TYPE_CHECKING:
    from medfed.sdk import Federation

EXIT_RUNTIME = 1
EXIT_CONFIG = 3

# A crash must not print local variables: they can hold tokens, keys or patient values.
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="medfed: a federated health-data network.",
)
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
    patients: Annotated[int, typer.Option(min=1, max=100_000, help="Generated patients per node.")] = 200,
    seed: Annotated[int, typer.Option()] = 42,
    rounds: Annotated[int, typer.Option(min=1, max=100, help="FedAvg rounds.")] = 3,
    keep_running: Annotated[bool, typer.Option("--keep-running", help="Leave the network up until Ctrl-C.")] = False,
) -> None:
    """Run a coordinator and three nodes, a federated count and a FedAvg job; print results and the console URL."""
    from medfed.demo import run_demo

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        run_demo(root=root, patients=patients, seed=seed, rounds=rounds, keep_running=keep_running, say=say)
    except MedfedError as exc:
        raise _fail(exc) from None


job_app = typer.Typer(no_args_is_help=True, help="Submit and follow federated jobs at a coordinator.")
app.add_typer(job_app, name="job")

CoordinatorUrl = Annotated[
    str | None,
    typer.Option("--coordinator", envvar="MEDFED_COORDINATOR_URL", help="The coordinator's https:// URL."),
]
CaFile = Annotated[
    Path | None, typer.Option("--ca", envvar="MEDFED_CA_FILE", help="The coordinator's CA certificate (PEM).")
]
Token = Annotated[str | None, typer.Option("--token", envvar="MEDFED_TOKEN", help="A researcher or admin API token.")]
JobArg = Annotated[str, typer.Argument(help="The job's id.")]
WATCH_INTERVAL_S = 0.5


def _federation(url: str | None, ca: Path | None, token: str | None) -> Federation:
    from medfed.sdk import Federation

    if not url or ca is None or not token:
        missing = [name for name, value in (("--coordinator", url), ("--ca", ca), ("--token", token)) if not value]
        raise ConfigError(detail=f"missing {', '.join(missing)} (or its MEDFED_* variable)")
    try:
        return Federation(url, token=token, ca_file=ca)
    except OSError as exc:
        raise ConfigError(detail=f"cannot read the CA file ({type(exc).__name__})") from None


def _print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _job_call(url: str | None, ca: Path | None, token: str | None, call: Callable[[Federation], object]) -> object:
    """Run ``call`` on a client; map a refusal or an unreachable coordinator to exit 1, bad settings to 3."""
    from medfed.sdk import FederationError

    try:
        with _federation(url, ca, token) as federation:
            return call(federation)
    except MedfedError as exc:
        raise _fail(exc) from None
    except FederationError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(EXIT_RUNTIME) from None


@job_app.command("submit")
def job_submit(
    kind: Annotated[str, typer.Option(help="count or fedavg_mlp.")],
    coordinator: CoordinatorUrl = None,
    ca: CaFile = None,
    token: Token = None,
    rounds: Annotated[int | None, typer.Option(help="fedavg_mlp: rounds.")] = None,
    local_epochs: Annotated[int | None, typer.Option(help="fedavg_mlp: local epochs per round.")] = None,
    lr: Annotated[float | None, typer.Option(help="fedavg_mlp: learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="fedavg_mlp: mini-batch size.")] = None,
    hidden: Annotated[list[int] | None, typer.Option(help="fedavg_mlp: a hidden layer width (repeatable).")] = None,
    quorum: Annotated[int | None, typer.Option(help="fedavg_mlp: fewest valid replies a round aggregates.")] = None,
    round_timeout: Annotated[float | None, typer.Option(help="Seconds one round may take.")] = None,
    seed: Annotated[int | None, typer.Option(help="The job's seed [default: random].")] = None,
) -> None:
    """Submit a job and print it as JSON (its ``id`` names it in the other commands)."""
    options = {
        "rounds": rounds,
        "local_epochs": local_epochs,
        "lr": lr,
        "batch_size": batch_size,
        "hidden": hidden,
        "quorum": quorum,
        "round_timeout_s": round_timeout,
    }
    spec: dict[str, object] = {"kind": kind, **{key: value for key, value in options.items() if value is not None}}
    _print_json(_job_call(coordinator, ca, token, lambda federation: federation.submit(spec, seed=seed)))


@job_app.command("status")
def job_status(job: JobArg, coordinator: CoordinatorUrl = None, ca: CaFile = None, token: Token = None) -> None:
    """Print the job with its nodes and rounds as JSON."""
    _print_json(_job_call(coordinator, ca, token, lambda federation: federation.job(job)))


@job_app.command("results")
def job_results(job: JobArg, coordinator: CoordinatorUrl = None, ca: CaFile = None, token: Token = None) -> None:
    """Print an ended job's result (or its error) as JSON; exit 1 while it runs."""
    _print_json(_job_call(coordinator, ca, token, lambda federation: federation.results(job)))


@job_app.command("cancel")
def job_cancel(job: JobArg, coordinator: CoordinatorUrl = None, ca: CaFile = None, token: Token = None) -> None:
    """Cancel a job that has not ended (it stops before its next round)."""
    done = _job_call(coordinator, ca, token, lambda federation: federation.cancel(job))
    assert isinstance(done, dict)
    console.print(f"job {done['status']}", markup=False)


def _rounds_table(job: dict[str, Any]) -> Table:
    """Rounds x nodes: each cell the node's train/evaluate outcome and its reply time."""
    node_ids = [part["node_id"] for part in job.get("nodes", [])]
    for record in job.get("rounds", []):
        node_ids += [node_id for node_id in record["per_node"] if node_id not in node_ids]
    table = Table(title=f"job {job['id']} ({job['kind']}): {job['status']}", title_justify="left")
    table.add_column("round", justify="right")
    table.add_column("status")
    table.add_column("ms", justify="right")
    for node_id in node_ids:
        table.add_column(node_id)
    for record in job.get("rounds", []):
        cells = []
        for node_id in node_ids:
            entry = record["per_node"].get(node_id, {})
            parts = [
                f"{entry[phase]}" + (f" {entry[phase + '_ms']:.0f}ms" if phase + "_ms" in entry else "")
                for phase in ("train", "evaluate")
                if phase in entry
            ]
            cells.append(" / ".join(parts) or "…")
        duration = record.get("duration_ms")
        table.add_row(str(record["round"]), record["status"], "" if duration is None else f"{duration:.0f}", *cells)
    if job.get("error"):
        table.caption = f"error: {job['error']}"
    return table


@job_app.command("watch")
def job_watch(job: JobArg, coordinator: CoordinatorUrl = None, ca: CaFile = None, token: Token = None) -> None:
    """Show a live table of the job's rounds x nodes (polled every 0.5 s) until it ends.

    Exit codes: 0 the job succeeded; 1 it failed or was cancelled, or the coordinator refused.
    """
    import time

    from rich.live import Live

    def follow(federation: Federation) -> object:
        current = federation.job(job)
        with Live(_rounds_table(current), console=console, auto_refresh=False) as live:
            while current["status"] not in ("succeeded", "failed", "cancelled"):
                time.sleep(WATCH_INTERVAL_S)
                current = federation.job(job)
                live.update(_rounds_table(current), refresh=True)
        return current

    final = _job_call(coordinator, ca, token, follow)
    assert isinstance(final, dict)
    if final["status"] != "succeeded":
        reason = f": {final['error']}" if final.get("error") else ""
        console.print(f"job {final['status']}{reason}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUNTIME)


def main() -> None:
    """Entry point of the ``medfed`` console script."""
    app()
