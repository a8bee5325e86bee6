"""``medfed node``: set up, run and feed a hospital node; its sub-groups live in the ``node_*`` modules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.errors import AccessError, ConfigError, InputError, MedfedError
from medfed.cli._common import (
    EXIT_CONFIG,
    DataDir,
    cli_actor,
    console,
    fail,
    node_audit,
    node_settings,
    print_json,
)
from medfed.cli.node_data import dataset_app, linkage_app, view_app
from medfed.cli.node_queues import queues_app
from medfed.cli.node_trust import audit_app, policy_app

node_app = typer.Typer(no_args_is_help=True, help="Run and administer a hospital node.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens for the node's local users.")


@node_app.command("init")
def node_init(data_dir: DataDir = None) -> None:
    """Create the node's data directory and database (safe to run again: it migrates)."""
    from node.runtime import init_node

    try:
        settings = node_settings(data_dir)
        _, revision = init_node(settings)
    except MedfedError as exc:
        raise fail(exc) from None
    console.print(f"node initialised in {settings.data_dir} (schema {revision})")


@node_app.command("start")
def node_start(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8080].")] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="PEM certificate (chain): serve HTTPS [env: MEDFED_NODE_TLS_CERT]."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert [env: MEDFED_NODE_TLS_KEY].")
    ] = None,
) -> None:
    """Serve the node's FHIR API (HTTPS with --tls-cert and --tls-key)."""
    from node.runtime import serve

    try:
        serve(node_settings(data_dir, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key))
    except MedfedError as exc:
        raise fail(exc) from None


@node_app.command("ingest")
def node_ingest(
    paths: Annotated[list[Path], typer.Argument(help="Bundle .json files, .ndjson files or folders.")],
    data_dir: DataDir = None,
) -> None:
    """Load FHIR transaction/batch Bundles and NDJSON into the node, then print a data-quality summary."""
    from node.fhir.ingest import ingest_paths
    from node.runtime import open_service

    try:
        settings = node_settings(data_dir)
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
        raise fail(exc) from None
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
        settings = node_settings(data_dir)
        service = open_service(settings)
        token_id, token = create_token(service.engine, Role(role), label)
        node_audit(settings, service.engine).token_event(
            created=True, token_id=token_id, role=role, actor=cli_actor(None)
        )
    except MedfedError as exc:
        raise fail(exc) from None
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
        settings = node_settings(data_dir)
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
        raise fail(exc) from None
    console.print(  # markup off: an IPv6 URL's [brackets] are not rich markup
        f"enrolled as {identity.node_id} with {identity.coordinator_url} (CA {identity.ca_fingerprint})",
        markup=False,
        soft_wrap=True,
    )


@node_app.command("locate")
def node_locate(
    patient: Annotated[str, typer.Argument(help="The id of one of this node's Patients.")],
    data_dir: DataDir = None,
    purpose: Annotated[str, typer.Option(help="Purpose of use (only treatment is answered).")] = "treatment",
    timeout: Annotated[float, typer.Option(min=1, max=120, help="Seconds to wait for other nodes.")] = 20.0,
) -> None:
    """Find the patient's records at other nodes (record locator) and print them as JSON, with their origin."""
    from node.locator.asker import locate
    from node.locator.context import open_context
    from node.runtime import open_service

    try:
        settings = node_settings(data_dir)
        service = open_service(settings)
        context = open_context(settings.data_dir, service, proxy=settings.coordinator_proxy)
        if context is None:
            raise ConfigError(detail="the node is not enrolled; run medfed node enrol")
        result = locate(context, patient, purpose=purpose, timeout_s=timeout)
    except MedfedError as exc:
        raise fail(exc) from None
    print_json(result.as_dict())


def _medfed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medfed")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


# The order below is the order of `medfed node --help`: the node's own commands, then the queues'
# (merged in: they have no group name), then the sub-groups.
node_app.add_typer(queues_app)
node_app.add_typer(token_app, name="token")
node_app.add_typer(view_app, name="view")
node_app.add_typer(dataset_app, name="dataset")
node_app.add_typer(linkage_app, name="linkage-key")
node_app.add_typer(audit_app, name="audit")
node_app.add_typer(policy_app, name="policy")
