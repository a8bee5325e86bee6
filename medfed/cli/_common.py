"""What every command group shares: exit codes, the terminal, error printing and the settings loaders."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console

from common.errors import ConfigError, MedfedError
from coordinator.config import CoordinatorSettings
from node.config import NodeSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_T = TypeVar("_T")

EXIT_RUNTIME = 1
EXIT_CONFIG = 3

console = Console(stderr=True)


def fail(exc: MedfedError) -> typer.Exit:
    """Print the error's message (never a trace) and the exit to raise: 3 for a ConfigError, else 1."""
    code = EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_RUNTIME
    hints = "; ".join(exc.hints)
    console.print(f"[red]error:[/red] {exc.detail or exc.public_message}" + (f" ({hints})" if hints else ""))
    return typer.Exit(code)


def print_json(value: object) -> None:
    """``value`` as indented JSON on stdout."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


# --- the node's settings, store and audit log ---

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="The node's data directory [env: MEDFED_NODE_DATA_DIR]."),
]


def node_settings(data_dir: Path | None, **overrides: object) -> NodeSettings:
    """The node's settings with the options given (None: unset); ConfigError names the invalid fields."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return NodeSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors())
        raise ConfigError(detail=f"invalid settings: {fields}") from None


def cli_actor(by: str | None) -> str:
    """Who acts, as the audit log records it: ``--by`` or the OS user."""
    import getpass

    return "cli:" + (by or getpass.getuser())[:100]


def node_audit(settings: NodeSettings, engine: Any) -> Any:
    """The node's audit log."""
    from node.audit import AuditLog

    return AuditLog.open(engine, settings.data_dir)


def node_engine(settings: NodeSettings) -> Any:
    """The engine of the node's store (ConfigError when the node is not initialised)."""
    from node.runtime import open_service

    return open_service(settings).engine


# --- the coordinator's settings and database ---

CoordinatorDataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="The coordinator's data directory [env: MEDFED_COORDINATOR_DATA_DIR]."),
]


def coordinator_settings(data_dir: Path | None, **overrides: object) -> CoordinatorSettings:
    """The coordinator's settings with the options given (None: unset); ConfigError names the invalid fields."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return CoordinatorSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) or "settings" for err in exc.errors())
        raise ConfigError(detail=f"invalid settings: {fields}") from None


def on_coordinator_db(settings: CoordinatorSettings, work: Callable[[Engine], _T]) -> _T:
    """``work`` on the coordinator's database, opened for this one command and closed after it."""
    from coordinator.runtime import open_engine

    engine = open_engine(settings)
    try:
        return work(engine)
    finally:
        engine.dispose()
