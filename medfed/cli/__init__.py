"""The one ``medfed`` command.

Exit codes (so systemd and scripts can tell a bad configuration from a failure):
  0  success
  1  runtime error (the command ran and failed; retrying may help)
  2  usage error (unknown option, missing argument)
  3  configuration error (a setting, path or database URL is wrong; retrying will not help)

One module per command group; this one assembles them in the order `medfed --help` lists them.
"""

from __future__ import annotations

import typer

from medfed.cli._common import EXIT_CONFIG, EXIT_RUNTIME
from medfed.cli.coordinator import coordinator_app
from medfed.cli.demo import demo_app
from medfed.cli.job import job_app
from medfed.cli.node import node_app
from medfed.cli.researcher import researcher_app

__all__ = ["EXIT_CONFIG", "EXIT_RUNTIME", "app", "main"]

# A crash must not print local variables: they can hold tokens, keys or patient values.
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="medfed: a federated health-data network.",
)
app.add_typer(demo_app)  # `medfed demo`: merged in, it has no group name
app.add_typer(node_app, name="node")
app.add_typer(coordinator_app, name="coordinator")
app.add_typer(researcher_app, name="researcher")
app.add_typer(job_app, name="job")


def main() -> None:
    """Entry point of the ``medfed`` console script."""
    app()
