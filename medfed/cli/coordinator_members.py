"""``medfed coordinator researcher`` and ``medfed coordinator node``: the network's members, their keys
and revocation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from common.errors import ConfigError, InputError, MedfedError
from medfed.cli._common import CoordinatorDataDir, console, coordinator_settings, fail, on_coordinator_db

coordinator_researcher_app = typer.Typer(
    no_args_is_help=True, help="Researchers: their keys, studies and tokens (signed by the network-admin key)."
)
coordinator_node_app = typer.Typer(no_args_is_help=True, help="Enrolled nodes: list them, revoke one.")
AdminKeyOption = Annotated[
    Path | None,
    typer.Option("--admin-key", help="The network-admin key file [default: the one init wrote in the data dir]."),
]


@coordinator_researcher_app.command("add")
def coordinator_researcher_add(
    name: Annotated[str, typer.Argument(help="The researcher's name (letters, digits and ._@:+-).")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The researcher.pub that researcher init wrote.")],
    study: Annotated[list[str], typer.Option("--study", help="A study the researcher is a member of (repeatable).")],
    data_dir: CoordinatorDataDir = None,
    admin_key: AdminKeyOption = None,
    valid_days: Annotated[int, typer.Option(min=1, max=3650, help="How long the membership is valid.")] = 365,
) -> None:
    """Register a researcher: their membership certificate (signed by the network-admin key) and an API token of
    role researcher bound to them, printed once."""
    from common.crypto import VerifyKey
    from coordinator.identity import load_network_admin_key
    from coordinator.researchers import add_researcher

    try:
        settings = coordinator_settings(data_dir)
        admin = load_network_admin_key(settings.data_dir, admin_key)
        try:
            key = VerifyKey.from_text(public_key.read_text(encoding="ascii").strip())
        except (OSError, UnicodeDecodeError, InputError):
            raise ConfigError(detail=f"{public_key} is not a researcher public key (researcher.pub)") from None
        added = on_coordinator_db(
            settings,
            lambda engine: add_researcher(
                engine, admin, name=name, public_key=key, studies=study, valid_days=valid_days
            ),
        )
    except InputError as exc:
        console.print(f"[red]error:[/red] {exc.detail}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    except MedfedError as exc:
        raise fail(exc) from None
    console.print(
        f"researcher {name} added (key {key.fingerprint()}, membership {added.serial}); "
        "their API token is shown only now:",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    sys.stdout.write(added.token + "\n")


@coordinator_researcher_app.command("list")
def coordinator_researcher_list(data_dir: CoordinatorDataDir = None) -> None:
    """The registered researchers: name, key fingerprint, revoked or not."""
    from coordinator.store.researchers import list_researchers

    try:
        found = on_coordinator_db(coordinator_settings(data_dir), list_researchers)
    except MedfedError as exc:
        raise fail(exc) from None
    for record in found:
        state = "revoked" if record.revoked_at is not None else "active"
        sys.stdout.write(f"{record.name}\t{record.key_id}\t{state}\n")


@coordinator_researcher_app.command("revoke")
def coordinator_researcher_revoke(
    name: Annotated[str, typer.Argument(help="The researcher's name.")],
    data_dir: CoordinatorDataDir = None,
    admin_key: AdminKeyOption = None,
) -> None:
    """Revoke a researcher and their token; the new revocation list reaches every node with its next poll or
    heartbeat, and nodes refuse the researcher's jobs from then on, running ones included."""
    from coordinator.identity import load_network_admin_key
    from coordinator.researchers import revoke_researcher

    try:
        settings = coordinator_settings(data_dir)
        admin = load_network_admin_key(settings.data_dir, admin_key)
        serial = on_coordinator_db(settings, lambda engine: revoke_researcher(engine, admin, name=name))
    except MedfedError as exc:
        raise fail(exc) from None
    console.print(f"researcher {name} revoked (revocation list {serial})", markup=False, highlight=False)


@coordinator_node_app.command("list")
def coordinator_node_list(data_dir: CoordinatorDataDir = None) -> None:
    """The registered nodes: id, key fingerprint, enrolled or revoked."""
    from common.crypto import VerifyKey
    from coordinator.store.nodes import list_nodes

    try:
        found = on_coordinator_db(coordinator_settings(data_dir), list_nodes)
    except MedfedError as exc:
        raise fail(exc) from None
    for node in found:
        sys.stdout.write(f"{node.id}\t{VerifyKey.from_text(node.public_key).fingerprint()}\t{node.status}\n")


@coordinator_node_app.command("revoke")
def coordinator_node_revoke(
    name: Annotated[str, typer.Argument(help="The node's id (or the name it enrolled under).")],
    data_dir: CoordinatorDataDir = None,
    admin_key: AdminKeyOption = None,
) -> None:
    """Revoke a node: the coordinator refuses its channel and relay calls, and the new revocation list reaches
    every other node with its next poll or heartbeat; they then mask for no secure sum that names it, answer no
    record-locator request from it and send it nothing."""
    from coordinator.identity import load_network_admin_key
    from coordinator.revocations import revoke_node

    try:
        settings = coordinator_settings(data_dir)
        admin = load_network_admin_key(settings.data_dir, admin_key)
        revoked = on_coordinator_db(settings, lambda engine: revoke_node(engine, admin, name=name))
    except InputError as exc:
        console.print(f"[red]error:[/red] {exc.detail}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    except MedfedError as exc:
        raise fail(exc) from None
    state = "revoked" if revoked.changed else "was revoked already"
    console.print(f"node {revoked.node_id} {state} (revocation list {revoked.serial})", markup=False, highlight=False)
