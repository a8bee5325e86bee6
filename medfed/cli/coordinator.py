"""``medfed coordinator``: set up and run the coordinator, enrolment codes and tokens."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from common.errors import InputError, MedfedError
from medfed.cli._common import CoordinatorDataDir, console, coordinator_settings, fail, on_coordinator_db
from medfed.cli.coordinator_members import coordinator_node_app, coordinator_researcher_app

coordinator_app = typer.Typer(no_args_is_help=True, help="Run and administer the coordinator.")
coordinator_token_app = typer.Typer(no_args_is_help=True, help="API tokens for the coordinator's users.")


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
    from coordinator.index.secret import ensure_rekey_secret
    from coordinator.runtime import init_coordinator

    try:
        settings = coordinator_settings(data_dir)
        engine, revision = init_coordinator(
            settings,
            hostnames=hostname or DEFAULT_HOSTNAMES,
            ip_addresses=ip or DEFAULT_IP_ADDRESSES,
        )
        engine.dispose()
        ensure_rekey_secret(settings.data_dir)  # the patient index's re-keying secret, beside the signing key
        fingerprint = CoordinatorIdentity.load(settings.data_dir).ca_fingerprint
    except InputError as exc:
        console.print(f"[red]error:[/red] --hostname/--ip: {exc.detail}")
        raise typer.Exit(2) from None
    except MedfedError as exc:
        raise fail(exc) from None
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
            coordinator_settings(
                data_dir,
                host=host,
                port=port,
                advertise=False if no_advertise else None,
                advertise_addresses=advertise_address or None,
            )
        )
    except MedfedError as exc:
        raise fail(exc) from None


@coordinator_token_app.command("create")
def coordinator_token_create(
    role: Annotated[str, typer.Option(help="admin, researcher or observer.")],
    data_dir: CoordinatorDataDir = None,
    label: Annotated[str, typer.Option(help="A note for whom the token is (stored, not secret).")] = "",
) -> None:
    """Create an API token and print it once; only its hash is stored."""
    from coordinator.store.tokens import Role, create_token

    if role not in {r.value for r in Role}:
        console.print("[red]error:[/red] --role must be admin, researcher or observer")
        raise typer.Exit(2)
    try:
        token_id, token = on_coordinator_db(
            coordinator_settings(data_dir), lambda engine: create_token(engine, role=Role(role), label=label)
        )
    except MedfedError as exc:
        raise fail(exc) from None
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
        settings = coordinator_settings(data_dir, public_url=public_url)
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
        raise fail(exc) from None
    expires = datetime.fromtimestamp(issued.expires_at / 1_000_000, tz=UTC).isoformat(timespec="seconds")
    console.print(f"enrolment code for {issued.node_name!r} (valid until {expires}); it is shown only now:")
    sys.stdout.write(issued.code + "\n")


coordinator_app.add_typer(coordinator_token_app, name="token")
coordinator_app.add_typer(coordinator_researcher_app, name="researcher")
coordinator_app.add_typer(coordinator_node_app, name="node")
