"""``medfed node view``, ``dataset`` and ``linkage-key``: the node's analysis variables, tables and linkage key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from common.errors import InputError, MedfedError
from medfed.cli._common import DataDir, console, fail, node_settings
from node.config import NodeSettings

view_app = typer.Typer(no_args_is_help=True, help="SQL-on-FHIR v2 views (the node's analysis variables).")
dataset_app = typer.Typer(no_args_is_help=True, help="Tabular datasets (CSV or Parquet with a declared schema).")
linkage_app = typer.Typer(no_args_is_help=True, help="The network linkage key of the patient index.")


@view_app.command("run")
def view_run(
    view: Annotated[Path, typer.Argument(help="A ViewDefinition (.json).")],
    input_path: Annotated[Path, typer.Option("--input", help="Resources as NDJSON, one per line.")],
) -> None:
    """Evaluate a ViewDefinition over resources, without a node, and print its rows as JSON lines.

    Exit codes: 0 done; 2 the view is invalid (the reason names its location and rule), cannot be
    evaluated on this input (rows printed before the failing resource stay printed), or a file
    cannot be read.
    """
    from rich.markup import escape

    from node.views.run import load_view, read_ndjson, view_lines

    try:
        definition = load_view(view)
        for line in view_lines(definition, read_ndjson(input_path)):
            sys.stdout.write(line + "\n")
    except InputError as exc:
        hints = "; ".join(exc.hints)
        console.print(f"[red]error:[/red] {escape(exc.public_message)}" + (f" ({escape(hints)})" if hints else ""))
        raise typer.Exit(2) from None


@dataset_app.command("add")
def dataset_add(
    name: Annotated[str, typer.Argument(help="The dataset's name (a-z, 0-9, _ and -), used like a view name.")],
    file: Annotated[Path, typer.Argument(help="The CSV or Parquet file; it is validated and copied.")],
    schema: Annotated[Path, typer.Option("--schema", help="The YAML schema: columns, types, bounds, missing codes.")],
    data_dir: DataDir = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a dataset of this name.")] = False,
) -> None:
    """Register a tabular dataset: refuse it unless every value fits the schema, then store a copy."""
    from node.datasets.registry import register_dataset
    from node.datasets.schema import load_schema

    try:
        info = register_dataset(node_settings(data_dir).data_dir, name, file, load_schema(schema), replace=replace)
    except MedfedError as exc:
        raise fail(exc) from None
    sys.stdout.write(orjson.dumps(info.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")


@dataset_app.command("list")
def dataset_list(data_dir: DataDir = None) -> None:
    """List the node's tabular datasets (name, format, rows, columns, SHA-256) as JSON."""
    from node.datasets.registry import list_datasets

    try:
        infos = list_datasets(node_settings(data_dir).data_dir)
    except MedfedError as exc:
        raise fail(exc) from None
    sys.stdout.write(orjson.dumps([i.as_dict() for i in infos], option=orjson.OPT_INDENT_2).decode() + "\n")


def _queue_all_patients(settings: NodeSettings) -> int:
    from node.linkage.outbox import enqueue_all_patients
    from node.runtime import open_service
    from node.store.db import write_transaction

    engine = open_service(settings).engine
    try:
        with write_transaction(engine) as conn:
            return enqueue_all_patients(conn)
    finally:
        engine.dispose()


@linkage_app.command("init")
def linkage_key_init(data_dir: DataDir = None) -> None:
    """Create a new network linkage key at this node (the network's first node; others import it).

    Every patient is queued for publishing; a running, enrolled node publishes them.
    """
    from node.linkage.keyfile import init_key, key_path

    try:
        settings = node_settings(data_dir)
        key = init_key(settings.data_dir)
        queued = _queue_all_patients(settings)
    except MedfedError as exc:
        raise fail(exc) from None
    console.print(f"linkage key {key.key_id} created in {key_path(settings.data_dir)}; {queued} patient(s) queued")
    console.print("hand the key file to every other node of the network (medfed node linkage-key import)")


@linkage_app.command("import")
def linkage_key_import(
    key_file: Annotated[Path, typer.Argument(help="The network's key file (64 hex digits, mode 0600).")],
    data_dir: DataDir = None,
) -> None:
    """Install the network linkage key handed out by the network operator; every patient is queued."""
    from node.linkage.keyfile import import_key

    try:
        settings = node_settings(data_dir)
        key = import_key(settings.data_dir, key_file)
        queued = _queue_all_patients(settings)
    except MedfedError as exc:
        raise fail(exc) from None
    console.print(f"linkage key {key.key_id} installed; {queued} patient(s) queued for publishing")


@linkage_app.command("rotate")
def linkage_key_rotate(
    data_dir: DataDir = None,
    source: Annotated[
        Path | None,
        typer.Option("--from", help="The network's new key file [default: a new random key, for one node]."),
    ] = None,
) -> None:
    """Replace the linkage key (the old one is kept as .previous) and republish every patient's tokens."""
    from node.linkage.keyfile import rotate_key

    try:
        settings = node_settings(data_dir)
        rotation = rotate_key(settings.data_dir, source)
        queued = _queue_all_patients(settings)
    except MedfedError as exc:
        raise fail(exc) from None
    console.print(
        f"linkage key {rotation.previous_key_id} -> {rotation.key_id}; {queued} patient(s) queued for republishing"
    )
