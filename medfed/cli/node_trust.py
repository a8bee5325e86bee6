"""``medfed node audit`` and ``medfed node policy``: the tamper-evident audit chain and policy as code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from common.errors import ConfigError, MedfedError
from medfed.cli._common import (
    EXIT_RUNTIME,
    DataDir,
    console,
    fail,
    node_audit,
    node_engine,
    node_settings,
    print_json,
)
from node.config import NodeSettings

audit_app = typer.Typer(no_args_is_help=True, help="The node's tamper-evident audit log.")
policy_app = typer.Typer(no_args_is_help=True, help="The node's policy (YAML the hospital owns).")


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
            settings = node_settings(data_dir)
            report = verify_node(
                node_engine(settings),
                settings.data_dir,
                receipt_path=against,
                public_keys=public_key or (),
                node_key=node_key,
            )
    except MedfedError as exc:
        raise fail(exc) from None
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
        settings = node_settings(data_dir)
        engine = node_engine(settings)
        node_audit(settings, engine)
        identity = NodeIdentity.load(settings.data_dir)
        count = export_chain(
            engine,
            out,
            node=None if identity is None else str(identity.node_id),
            identity_key=None if identity is None else identity.signing_key.public_key(),
        )
    except MedfedError as exc:
        raise fail(exc) from None
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
            settings = node_settings(data_dir)
            policy = policy or settings.policy_path
            spent = _ledger_spent(settings, job)
        else:
            spent = None
        policy_job, decision = dry_run(policy, job, spent=spent or Spent())
    except MedfedError as exc:
        raise fail(exc) from None
    if as_json:
        print_json(decision_json(policy_job, decision))
    else:
        sys.stdout.write(render(policy_job, decision) + "\n")
    raise typer.Exit(EXIT_CODES[decision.outcome])


def _ledger_spent(settings: NodeSettings, job_path: Path) -> Any:
    """What the node's ledger says was spent for the job's researcher and study (None: no initialised node)."""
    from node.policy.decision import Spent
    from node.policy.jobs import read_job_file
    from node.privacy.ledger import PrivacyLedger

    try:
        engine = node_engine(settings)
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
