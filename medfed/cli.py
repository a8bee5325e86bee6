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
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

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
    from sqlalchemy.engine import Engine

    from medfed.sdk import Federation

_T = TypeVar("_T")

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
        serve(_settings(data_dir, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key))
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


view_app = typer.Typer(no_args_is_help=True, help="SQL-on-FHIR v2 views (the node's analysis variables).")
node_app.add_typer(view_app, name="view")


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
        settings = _settings(data_dir)
        service = open_service(settings)
        token_id, token = create_token(service.engine, Role(role), label)
        _node_audit(settings, service.engine).token_event(
            created=True, token_id=token_id, role=role, actor=_cli_actor(None)
        )
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


dataset_app = typer.Typer(no_args_is_help=True, help="Tabular datasets (CSV or Parquet with a declared schema).")
node_app.add_typer(dataset_app, name="dataset")


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
        info = register_dataset(_settings(data_dir).data_dir, name, file, load_schema(schema), replace=replace)
    except MedfedError as exc:
        raise _fail(exc) from None
    sys.stdout.write(orjson.dumps(info.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")


@dataset_app.command("list")
def dataset_list(data_dir: DataDir = None) -> None:
    """List the node's tabular datasets (name, format, rows, columns, SHA-256) as JSON."""
    from node.datasets.registry import list_datasets

    try:
        infos = list_datasets(_settings(data_dir).data_dir)
    except MedfedError as exc:
        raise _fail(exc) from None
    sys.stdout.write(orjson.dumps([i.as_dict() for i in infos], option=orjson.OPT_INDENT_2).decode() + "\n")


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


linkage_app = typer.Typer(no_args_is_help=True, help="The network linkage key of the patient index.")
node_app.add_typer(linkage_app, name="linkage-key")


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
        settings = _settings(data_dir)
        key = init_key(settings.data_dir)
        queued = _queue_all_patients(settings)
    except MedfedError as exc:
        raise _fail(exc) from None
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
        settings = _settings(data_dir)
        key = import_key(settings.data_dir, key_file)
        queued = _queue_all_patients(settings)
    except MedfedError as exc:
        raise _fail(exc) from None
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
        settings = _settings(data_dir)
        rotation = rotate_key(settings.data_dir, source)
        queued = _queue_all_patients(settings)
    except MedfedError as exc:
        raise _fail(exc) from None
    console.print(
        f"linkage key {rotation.previous_key_id} -> {rotation.key_id}; {queued} patient(s) queued for republishing"
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
        settings = _settings(data_dir)
        service = open_service(settings)
        context = open_context(settings.data_dir, service, proxy=settings.coordinator_proxy)
        if context is None:
            raise ConfigError(detail="the node is not enrolled; run medfed node enrol")
        result = locate(context, patient, purpose=purpose, timeout_s=timeout)
    except MedfedError as exc:
        raise _fail(exc) from None
    _print_json(result.as_dict())


# --- trust: the audit chain, policy as code, approval and release queues (node/audit, node/policy) ---

audit_app = typer.Typer(no_args_is_help=True, help="The node's tamper-evident audit log.")
policy_app = typer.Typer(no_args_is_help=True, help="The node's policy (YAML the hospital owns).")
node_app.add_typer(audit_app, name="audit")
node_app.add_typer(policy_app, name="policy")
ByOption = Annotated[str | None, typer.Option("--by", help="Who decides (recorded in the audit) [default: OS user].")]


def _cli_actor(by: str | None) -> str:
    import getpass

    return "cli:" + (by or getpass.getuser())[:100]


def _node_audit(settings: NodeSettings, engine: Any) -> Any:
    from node.audit import AuditLog

    return AuditLog.open(engine, settings.data_dir)


def _node_engine(settings: NodeSettings) -> Any:
    from node.runtime import open_service

    return open_service(settings).engine


@audit_app.command("verify")
def audit_verify(
    data_dir: DataDir = None,
    against: Annotated[
        Path | None, typer.Option("--against", help="A chain-head receipt (JSON): also detect truncation, rollback.")
    ] = None,
    export: Annotated[Path | None, typer.Option("--export", help="Verify an export file instead of the node.")] = None,
    public_key: Annotated[
        list[str] | None, typer.Option("--public-key", help="An audit key to trust (base64url); repeatable.")
    ] = None,
    node_key: Annotated[str | None, typer.Option("--node-key", help="The node key that signed the receipt.")] = None,
) -> None:
    """Prove the audit chain: names the first bad entry (edited, deleted, reordered, forged).

    Exit codes: 0 the chain verifies; 1 it does not (the first bad entry is printed); 3 a file, key
    or setting is wrong.
    """
    from node.audit.checks import verify_export, verify_node

    try:
        if export is not None:
            report, pinned = verify_export(
                export, receipt_path=against, public_keys=public_key or (), node_key=node_key
            )
            if not pinned:
                console.print("[yellow]keys taken from the export itself; pin them with --public-key[/yellow]")
        else:
            settings = _settings(data_dir)
            report = verify_node(
                _node_engine(settings),
                settings.data_dir,
                receipt_path=against,
                public_keys=public_key or (),
                node_key=node_key,
            )
    except MedfedError as exc:
        raise _fail(exc) from None
    sys.stdout.write(report.summary() + "\n")
    if not report.ok:
        raise typer.Exit(EXIT_RUNTIME)


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Argument(help="A new file: JSON lines, with the keys to check them.")],
    data_dir: DataDir = None,
) -> None:
    """Write the audit chain for an auditor (pseudonyms only; local references never leave the node)."""
    from node.audit.export import export_chain
    from node.identity import NodeIdentity

    try:
        settings = _settings(data_dir)
        engine = _node_engine(settings)
        _node_audit(settings, engine)
        identity = NodeIdentity.load(settings.data_dir)
        count = export_chain(
            engine,
            out,
            node=None if identity is None else str(identity.node_id),
            identity_key=None if identity is None else identity.signing_key.public_key(),
        )
    except MedfedError as exc:
        raise _fail(exc) from None
    console.print(f"{count} audit entries written to {out}")


@policy_app.command("check")
def policy_check(
    job: Annotated[Path, typer.Argument(help="A job file (YAML: study, researcher, spec; see node/policy/jobs.py).")],
    data_dir: DataDir = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="A policy file [default: the node's policy_file].")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Dry-run: print the policy's decision on a job and the rule that made it; nothing runs.

    Exit codes: 0 allowed; 1 refused; 2 needs a person's approval; 3 the policy or the job file is
    invalid (note: a command-line usage error is also 2, as for every medfed command).
    """
    from node.policy.check import EXIT_CODES, dry_run, render
    from node.policy.check import as_json as decision_json
    from node.policy.decision import Spent

    try:
        if policy is None or data_dir is not None:
            settings = _settings(data_dir)
            policy = policy or settings.policy_path
            spent = _ledger_spent(settings, job)
        else:
            spent = None
        policy_job, decision = dry_run(policy, job, spent=spent or Spent())
    except MedfedError as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json(decision_json(policy_job, decision))
    else:
        sys.stdout.write(render(policy_job, decision) + "\n")
    raise typer.Exit(EXIT_CODES[decision.outcome])


def _ledger_spent(settings: NodeSettings, job_path: Path) -> Any:
    """What the node's ledger says was spent for the job's researcher and study (None: no initialised node)."""
    from node.policy.decision import Spent
    from node.policy.jobs import read_job_file
    from node.privacy.ledger import PrivacyLedger

    try:
        engine = _node_engine(settings)
    except ConfigError:
        return None
    job = read_job_file(job_path)
    ledger = PrivacyLedger(engine)
    account, node = ledger.usage(job.researcher, job.study), ledger.node_usage()
    return Spent(
        researcher_epsilon=0.0 if account is None else account.spent.epsilon,
        researcher_delta=0.0 if account is None else account.spent.delta,
        node_epsilon=0.0 if node is None else node.spent.epsilon,
        node_delta=0.0 if node is None else node.spent.delta,
    )


@node_app.command("approvals")
def node_approvals(
    data_dir: DataDir = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also decided and timed-out jobs.")] = False,
) -> None:
    """Jobs waiting for a person's approval (JSON lines, oldest first)."""
    from node.policy import queue

    state = None if show_all else queue.ApprovalState.PENDING
    _print_dataclass_lines(
        _node_queue_call(data_dir, lambda engine, audit: queue.list_approvals(engine, audit, state=state))
    )


def _node_queue_call(data_dir: Path | None, call: Callable[[Any, Any], Any]) -> Any:
    """``call(engine, audit)`` on the node's store and audit log; a MedfedError exits with its message."""
    try:
        settings = _settings(data_dir)
        engine = _node_engine(settings)
        return call(engine, _node_audit(settings, engine))
    except MedfedError as exc:
        raise _fail(exc) from None


def _print_dataclass_lines(values: Any) -> None:
    """One JSON line per dataclass instance, its fields in order."""
    import dataclasses

    for value in values:
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        sys.stdout.write(orjson.dumps(fields).decode() + "\n")


def _decide_job(job: str, data_dir: Path | None, by: str | None, note: str | None, *, approve: bool) -> None:
    from node.policy import queue

    decided = _node_queue_call(
        data_dir,
        lambda engine, audit: queue.decide_approval(
            engine, audit, job, approve=approve, actor=_cli_actor(by), note=note
        ),
    )
    console.print(f"job {decided.job_id}: {decided.state}")


JobIdArg = Annotated[str, typer.Argument(help="The job id, as `medfed node approvals` lists it.")]
NoteOption = Annotated[str | None, typer.Option("--note", help="A note kept with the decision (no patient data).")]


@node_app.command("approve")
def node_approve(job: JobIdArg, data_dir: DataDir = None, by: ByOption = None, note: NoteOption = None) -> None:
    """Approve a job that waits for a person (exit 1 when it is not pending)."""
    _decide_job(job, data_dir, by, note, approve=True)


@node_app.command("reject")
def node_reject(job: JobIdArg, data_dir: DataDir = None, by: ByOption = None, note: NoteOption = None) -> None:
    """Reject a job that waits for a person (exit 1 when it is not pending)."""
    _decide_job(job, data_dir, by, note, approve=False)


@node_app.command("releases")
def node_releases(
    data_dir: DataDir = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also released, withheld and timed-out results.")] = False,
) -> None:
    """Results held for a steward (JSON lines: id, job, summary; never the result itself)."""
    from node.policy import queue

    state = None if show_all else queue.ReleaseState.HELD
    _print_dataclass_lines(
        _node_queue_call(data_dir, lambda engine, audit: queue.list_holds(engine, audit, state=state))
    )


def _decide_hold(hold_id: int, data_dir: Path | None, by: str | None, *, release: bool) -> None:
    from node.policy import queue

    hold = _node_queue_call(
        data_dir,
        lambda engine, audit: queue.decide_release(engine, audit, hold_id, release=release, actor=_cli_actor(by)),
    )
    console.print(f"result {hold.id} of job {hold.job_id}: {'released' if release else 'withheld'}")


HoldIdArg = Annotated[int, typer.Argument(help="The held result's id, as `medfed node releases` lists it.")]


@node_app.command("release")
def node_release(hold: HoldIdArg, data_dir: DataDir = None, by: ByOption = None) -> None:
    """Release a held result to the coordinator (exit 1 when it is not held)."""
    _decide_hold(hold, data_dir, by, release=True)


@node_app.command("withhold")
def node_withhold(hold: HoldIdArg, data_dir: DataDir = None, by: ByOption = None) -> None:
    """Withhold a held result for good (exit 1 when it is not held)."""
    _decide_hold(hold, data_dir, by, release=False)


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


def _on_coordinator_db(settings: CoordinatorSettings, work: Callable[[Engine], _T]) -> _T:
    """``work`` on the coordinator's database, opened for this one command and closed after it."""
    from coordinator.runtime import open_engine

    engine = open_engine(settings)
    try:
        return work(engine)
    finally:
        engine.dispose()


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
        settings = _coordinator_settings(data_dir)
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
    from coordinator.store.tokens import Role, create_token

    if role not in {r.value for r in Role}:
        console.print("[red]error:[/red] --role must be admin, researcher or observer")
        raise typer.Exit(2)
    try:
        token_id, token = _on_coordinator_db(
            _coordinator_settings(data_dir), lambda engine: create_token(engine, role=Role(role), label=label)
        )
    except MedfedError as exc:
        raise _fail(exc) from None
    console.print(f"token {token_id} ({role}) created; it is shown only now:")
    sys.stdout.write(token + "\n")


coordinator_researcher_app = typer.Typer(
    no_args_is_help=True, help="Researchers: their keys, studies and tokens (signed by the network-admin key)."
)
coordinator_app.add_typer(coordinator_researcher_app, name="researcher")
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
        settings = _coordinator_settings(data_dir)
        admin = load_network_admin_key(settings.data_dir, admin_key)
        try:
            key = VerifyKey.from_text(public_key.read_text(encoding="ascii").strip())
        except (OSError, UnicodeDecodeError, InputError):
            raise ConfigError(detail=f"{public_key} is not a researcher public key (researcher.pub)") from None
        added = _on_coordinator_db(
            settings,
            lambda engine: add_researcher(
                engine, admin, name=name, public_key=key, studies=study, valid_days=valid_days
            ),
        )
    except InputError as exc:
        console.print(f"[red]error:[/red] {exc.detail}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    except MedfedError as exc:
        raise _fail(exc) from None
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
        found = _on_coordinator_db(_coordinator_settings(data_dir), list_researchers)
    except MedfedError as exc:
        raise _fail(exc) from None
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
        settings = _coordinator_settings(data_dir)
        admin = load_network_admin_key(settings.data_dir, admin_key)
        serial = _on_coordinator_db(settings, lambda engine: revoke_researcher(engine, admin, name=name))
    except MedfedError as exc:
        raise _fail(exc) from None
    console.print(f"researcher {name} revoked (revocation list {serial})", markup=False, highlight=False)


coordinator_node_app = typer.Typer(no_args_is_help=True, help="Enrolled nodes: list them, revoke one.")
coordinator_app.add_typer(coordinator_node_app, name="node")


@coordinator_node_app.command("list")
def coordinator_node_list(data_dir: CoordinatorDataDir = None) -> None:
    """The registered nodes: id, key fingerprint, enrolled or revoked."""
    from common.crypto import VerifyKey
    from coordinator.store.nodes import list_nodes

    try:
        found = _on_coordinator_db(_coordinator_settings(data_dir), list_nodes)
    except MedfedError as exc:
        raise _fail(exc) from None
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
        settings = _coordinator_settings(data_dir)
        admin = load_network_admin_key(settings.data_dir, admin_key)
        revoked = _on_coordinator_db(settings, lambda engine: revoke_node(engine, admin, name=name))
    except InputError as exc:
        console.print(f"[red]error:[/red] {exc.detail}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    except MedfedError as exc:
        raise _fail(exc) from None
    state = "revoked" if revoked.changed else "was revoked already"
    console.print(f"node {revoked.node_id} {state} (revocation list {revoked.serial})", markup=False, highlight=False)


researcher_app = typer.Typer(no_args_is_help=True, help="A researcher's own signing key.")
app.add_typer(researcher_app, name="researcher")


@researcher_app.command("init")
def researcher_init(
    out: Annotated[Path, typer.Option("--out", help="Where to write researcher.key and researcher.pub.")] = Path("."),
) -> None:
    """Create a researcher key pair: researcher.key (mode 0600, signs your jobs) and researcher.pub (give it to
    the coordinator's admin); print the public key and its fingerprint."""
    from common.crypto import SigningKey, save_private_key

    key = SigningKey.generate()
    public = key.public_key()
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (out / "researcher.pub").exists():
            raise ConfigError(detail=f"{out / 'researcher.pub'} exists; refusing to replace a researcher key")
        save_private_key(out / "researcher.key", key.to_pem())
        (out / "researcher.pub").write_text(public.to_text() + "\n", encoding="ascii")
    except OSError as exc:
        raise _fail(ConfigError(detail=f"cannot write to {out} ({type(exc).__name__})")) from None
    except MedfedError as exc:
        raise _fail(exc) from None
    console.print(f"key written to {out / 'researcher.key'} (keep it private)", markup=False, highlight=False)
    console.print(f"fingerprint: {public.fingerprint()}", markup=False, highlight=False, soft_wrap=True)
    sys.stdout.write(public.to_text() + "\n")


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


def _print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


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
        raise _fail(exc) from None
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
        raise _fail(ConfigError(detail="give a spec file or --kind, not both or neither"))
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
        raise _fail(exc) from None
    spec = {**base, **{key: value for key, value in options.items() if value is not None}}
    _print_json(
        _job_call(coordinator, ca, token, lambda federation: federation.submit(spec, seed=seed), key=key, study=study)
    )


@job_app.command("status")
def job_status(job: JobArg, coordinator: CoordinatorUrl = None, ca: CaFile = None, token: Token = None) -> None:
    """Print the job with its nodes and rounds as JSON."""
    _print_json(_job_call(coordinator, ca, token, lambda federation: federation.job(job)))


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
    _print_json(outcome)
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


def main() -> None:
    """Entry point of the ``medfed`` console script."""
    app()
