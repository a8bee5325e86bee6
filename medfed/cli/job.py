"""``medfed job``: submit and follow federated jobs at a coordinator, through the SDK."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from common.errors import ConfigError, MedfedError
from medfed.cli._common import EXIT_RUNTIME, console, fail, print_json

if TYPE_CHECKING:
    from medfed.sdk import Federation

job_app = typer.Typer(no_args_is_help=True, help="Submit and follow federated jobs at a coordinator.")

CoordinatorUrl = Annotated[
    str | None,
    typer.Option("--coordinator", envvar="MEDFED_COORDINATOR_URL", help="The coordinator's https:// URL."),
]
CaFile = Annotated[
    Path | None, typer.Option("--ca", envvar="MEDFED_CA_FILE", help="The coordinator's CA certificate (PEM).")
]
Token = Annotated[str | None, typer.Option("--token", envvar="MEDFED_TOKEN", help="A researcher or admin API token.")]
ResearcherKey = Annotated[
    Path | None,
    typer.Option("--key", envvar="MEDFED_RESEARCHER_KEY", help="Your researcher.key: signs the job (researcher init)."),
]
Study = Annotated[
    str | None, typer.Option("--study", envvar="MEDFED_STUDY", help="The study the job is for [default: the spec's].")
]
JobArg = Annotated[str, typer.Argument(help="The job's id.")]
WATCH_INTERVAL_S = 0.5


def _federation(
    url: str | None, ca: Path | None, token: str | None, key: Path | None = None, study: str | None = None
) -> Federation:
    from medfed.sdk import Federation

    if not url or ca is None or not token:
        missing = [name for name, value in (("--coordinator", url), ("--ca", ca), ("--token", token)) if not value]
        raise ConfigError(detail=f"missing {', '.join(missing)} (or its MEDFED_* variable)")
    try:
        return Federation(url, token=token, ca_file=ca, researcher_key=key, study=study)
    except OSError as exc:
        raise ConfigError(detail=f"cannot read the CA file ({type(exc).__name__})") from None


def _job_call(
    url: str | None,
    ca: Path | None,
    token: str | None,
    call: Callable[[Federation], object],
    *,
    key: Path | None = None,
    study: str | None = None,
) -> object:
    """Run ``call`` on a client; map a refusal or an unreachable coordinator to exit 1, bad settings to 3."""
    from medfed.sdk import FederationError

    try:
        with _federation(url, ca, token, key, study) as federation:
            return call(federation)
    except MedfedError as exc:
        raise fail(exc) from None
    except FederationError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(EXIT_RUNTIME) from None


def _spec_file(path: Path) -> dict[str, Any]:
    """A job spec from a YAML or JSON file (JSON is YAML); ConfigError when it is not a mapping."""
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(detail=f"cannot read the spec file ({type(exc).__name__})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(detail="the spec file must hold a mapping (kind: ..., ...)")
    return loaded


@job_app.command("submit")
def job_submit(
    spec_file: Annotated[
        Path | None, typer.Argument(help="A job spec as YAML or JSON (e.g. kind: analysis ...); or use --kind.")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="count or fedavg_mlp (without a spec file).")] = None,
    coordinator: CoordinatorUrl = None,
    ca: CaFile = None,
    token: Token = None,
    key: ResearcherKey = None,
    study: Study = None,
    rounds: Annotated[int | None, typer.Option(help="fedavg_mlp: rounds.")] = None,
    local_epochs: Annotated[int | None, typer.Option(help="fedavg_mlp: local epochs per round.")] = None,
    lr: Annotated[float | None, typer.Option(help="fedavg_mlp: learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="fedavg_mlp: mini-batch size.")] = None,
    hidden: Annotated[list[int] | None, typer.Option(help="fedavg_mlp: a hidden layer width (repeatable).")] = None,
    quorum: Annotated[int | None, typer.Option(help="fedavg_mlp: fewest valid replies a round aggregates.")] = None,
    round_timeout: Annotated[float | None, typer.Option(help="Seconds one round may take.")] = None,
    seed: Annotated[int | None, typer.Option(help="The job's seed [default: random].")] = None,
) -> None:
    """Sign a job with your researcher key (--key) and submit it; print it as JSON (its ``id`` names it in the
    other commands).

    The job is a spec file (any kind; ``analysis`` jobs are written this way) or ``--kind`` with options;
    the options below override the file's fields. It is signed for --study (default: the spec's study).
    """
    if (spec_file is None) == (kind is None):
        raise fail(ConfigError(detail="give a spec file or --kind, not both or neither"))
    options = {
        "rounds": rounds,
        "local_epochs": local_epochs,
        "lr": lr,
        "batch_size": batch_size,
        "hidden": hidden,
        "quorum": quorum,
        "round_timeout_s": round_timeout,
    }
    try:
        base: dict[str, Any] = {"kind": kind} if spec_file is None else _spec_file(spec_file)
    except ConfigError as exc:
        raise fail(exc) from None
    spec = {**base, **{key: value for key, value in options.items() if value is not None}}
    print_json(
        _job_call(coordinator, ca, token, lambda federation: federation.submit(spec, seed=seed), key=key, study=study)
    )


@job_app.command("status")
def job_status(job: JobArg, coordinator: CoordinatorUrl = None, ca: CaFile = None, token: Token = None) -> None:
    """Print the job with its nodes and rounds as JSON."""
    print_json(_job_call(coordinator, ca, token, lambda federation: federation.job(job)))


@job_app.command("results")
def job_results(
    job: JobArg,
    coordinator: CoordinatorUrl = None,
    ca: CaFile = None,
    token: Token = None,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw a histogram or Kaplan-Meier result to this PNG file.")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Also write a learning job's final model to this file (a torch state_dict).")
    ] = None,
    model_round: Annotated[
        int | None, typer.Option("--round", min=1, help="With --model: the model after this round, not the last.")
    ] = None,
) -> None:
    """Print an ended job's result (or its error) as JSON; exit 1 while it runs.

    With ``--plot``, a histogram's bars or a Kaplan-Meier curve with numbers at risk go to a PNG file;
    exit 1 when the job has no such result. With ``--model``, the model the job saved after its last round
    goes to a file for ``torch.load(path, weights_only=True)`` (``--round K``: the model after round K, kept
    by the coordinator for every round within its retention budget); exit 1 when the job saved none.
    """
    outcome = _job_call(coordinator, ca, token, lambda federation: federation.results(job))
    print_json(outcome)
    if model is not None:
        saved = _job_call(
            coordinator, ca, token, lambda federation: federation.save_model(job, model, round=model_round)
        )
        assert isinstance(saved, tuple)
        console.print(f"model of round {saved[0]} written to {model}", markup=False, highlight=False)
    if plot is not None:
        from medfed.results import PLOTTABLE, plot_result

        assert isinstance(outcome, dict)
        document = outcome.get("result")
        if not isinstance(document, dict) or document.get("analysis") not in PLOTTABLE:
            console.print(f"[red]error:[/red] only {', '.join(sorted(PLOTTABLE))} analysis results can be plotted")
            raise typer.Exit(EXIT_RUNTIME)
        plot_result(document, plot)
        console.print(f"plot written to {plot}", markup=False, highlight=False)


@job_app.command("cancel")
def job_cancel(job: JobArg, coordinator: CoordinatorUrl = None, ca: CaFile = None, token: Token = None) -> None:
    """Cancel a job that has not ended (it stops before its next round)."""
    done = _job_call(coordinator, ca, token, lambda federation: federation.cancel(job))
    assert isinstance(done, dict)
    console.print(f"job {done['status']}", markup=False)


_CELL_METRICS = (("train_loss", "loss"), ("eval_acc", "acc"), ("eval_cindex", "c"))


def _metrics_text(metrics: dict[str, Any] | None) -> str:
    """A learning round's numbers for a cell: training loss, accuracy or C-index."""
    if not metrics:
        return ""
    return "".join(f" {label} {metrics[key]:.3f}" for key, label in _CELL_METRICS if key in metrics)


def _weighted_evaluation(record: dict[str, Any]) -> str:
    """The round's evaluation metric averaged over the nodes, weighted by their test rows."""
    totals: dict[str, float] = {}
    weight = 0.0
    for entry in record["per_node"].values():
        metrics = entry.get("evaluate_metrics") or {}
        n = float(metrics.get("num-examples", 0))
        for key in ("eval_acc", "eval_cindex"):
            if key in metrics:
                totals[key] = totals.get(key, 0.0) + n * float(metrics[key])
        weight += n
    return _metrics_text({key: value / weight for key, value in totals.items()}).strip() if weight else ""


def _rounds_table(job: dict[str, Any]) -> Table:
    """Rounds x nodes: each cell the node's train/evaluate outcome and its reply time (and a learning
    round's loss, accuracy or C-index); a learning job also shows the evaluation averaged over the nodes."""
    node_ids = [part["node_id"] for part in job.get("nodes", [])]
    for record in job.get("rounds", []):
        node_ids += [node_id for node_id in record["per_node"] if node_id not in node_ids]
    table = Table(title=f"job {job['id']} ({job['kind']}): {job['status']}", title_justify="left")
    table.add_column("round", justify="right")
    table.add_column("status")
    table.add_column("ms", justify="right")
    learning = job.get("kind") == "learning"
    if learning:
        table.add_column("evaluation")
    for node_id in node_ids:
        table.add_column(node_id)
    for record in job.get("rounds", []):
        cells = [_weighted_evaluation(record)] if learning else []
        for node_id in node_ids:
            entry = record["per_node"].get(node_id, {})
            parts = [
                f"{entry[phase]}"
                + (f" {entry[phase + '_ms']:.0f}ms" if phase + "_ms" in entry else "")
                + _metrics_text(entry.get(f"{phase}_metrics"))
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
