"""Aim higher on FLamby's datasets: hyper-parameters chosen by k-fold cross-validation inside the training splits.

The test split is never read. Each centre's **training** rows (FLamby's ``train`` split) are cut into
``--folds`` folds (a seeded permutation per centre); for fold ``f`` every centre trains on its other folds
and holds fold ``f`` out as its ``test`` split. A candidate (model, strategy, learning rates, local
steps, batch size) runs as a federated job on those frames with the same code the network runs: the
coordinator's round driver (:class:`coordinator.federation.driver.FedAvgDriver`) and strategies, and each
centre's node ``learning`` app (:func:`node.federation.apps.learning.learning_app`) on its rows as the node's
dataset loader reads them (:func:`node.datasets.loader.load_table`), in one process over
:class:`coordinator.federation.memory.InMemoryTransport`. The job keeps its global model after every
round, so one job of ``max_rounds`` scores every number of rounds up to it.

The validation score is the pooled-test metric of :mod:`benchmarks.flamby` computed on the pooled held-out
folds instead of the pooled test split (heart: accuracy, inputs standardised with the pooled training folds'
statistics, as FLamby scores its pooled test; TCGA: C-index of ``-risk``). A candidate's score at round r
is the mean over folds; the chosen configuration is the (candidate, r) with the highest mean (ties: fewer
rounds, then the earlier candidate). Candidates run in the order listed until ``--budget-s`` is spent.

The chosen configuration is frozen into :data:`benchmarks.flamby.AIM_HIGHER` and run on seeds 42-46
through real node and coordinator processes by ``python benchmarks/flamby.py --dataset NAME --aim-higher``.

Usage: python benchmarks/flamby_search.py --dataset heart|tcga [--folds 4] [--budget-s 1200] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import statistics
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

if not __package__:  # run as a file (python benchmarks/NAME.py): put the repo root on sys.path
    import _script  # type: ignore[import-not-found]  # noqa: F401  # benchmarks/_script.py

from benchmarks.flamby import Dataset, load_dataset, pooled_split, score
from benchmarks.network import machine, print_table
from common.analytics.cohort import Source
from common.flower import ensure_task_identity, flower_node_id
from coordinator.federation.driver import DriverState, FedAvgDriver, NodeOutcome, initial_state
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.learning import LearningSpec
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.memory import InMemoryTransport
from node.datasets.loader import load_table
from node.datasets.schema import load_schema
from node.federation.apps.learning import learning_app
from node.federation.host import ClientAppHost, InstalledApp
from node.federation.sources import LoadedSource

FOLD_SEED = 2026  # the permutation of each centre's training rows into folds (not an evaluation seed)
JOB_SEED = 1000  # the job seed of fold f is JOB_SEED + f (the evaluation seeds are 42-46)


@dataclass(frozen=True)
class Candidate:
    """One configuration: changes to the dataset's task, the strategy, and the most rounds to score."""

    label: str
    task: Mapping[str, Any]
    strategy: Mapping[str, Any]
    max_rounds: int

    def spec(self, dataset: Dataset, rounds: int) -> dict[str, Any]:
        """The learning job's spec (without seed) for ``rounds`` rounds."""
        return {
            **dataset.task,
            **self.task,
            "kind": "learning",
            "rounds": rounds,
            "quorum": len(dataset.centres),
            "round_timeout_s": 120,
            "strategy": dict(self.strategy),
        }


def _fedopt(name: str, lr: float, server_lr: float, **task: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    strategy = {"name": name, "flavour": "flamby", "server_lr": server_lr, "tau": 1e-8, "beta1": 0.9}
    if name != "fedadagrad":
        strategy["beta2"] = 0.999
    return {"lr": lr, **task}, strategy


def candidates(dataset: str) -> list[Candidate]:
    """The search space, most promising first (FLamby's own settings first, as the reference)."""
    if dataset == "heart":
        rounds = 30
        mlp = {"model": "mlp", "hidden": [16]}
        rows: list[tuple[str, tuple[dict[str, Any], dict[str, Any]]]] = [
            ("FedAvg lr 0.001 (FLamby)", ({"lr": 0.001}, {"name": "fedavg"})),
            ("FedYogi lr 0.0032 eta 0.01 (FLamby)", _fedopt("fedyogi", 0.003162, 0.01)),
            ("FedAdam lr 0.01 eta 0.01 (FLamby)", _fedopt("fedadam", 0.01, 0.01)),
            ("FedAdagrad lr 0.0032 eta 0.32 (FLamby)", _fedopt("fedadagrad", 0.003162, 0.316228)),
            ("FedAvg lr 0.01", ({"lr": 0.01}, {"name": "fedavg"})),
            ("FedAvg lr 0.05", ({"lr": 0.05}, {"name": "fedavg"})),
            ("FedAvg lr 0.01 batch 16", ({"lr": 0.01, "batch_size": 16}, {"name": "fedavg"})),
            ("FedAvg lr 0.001 momentum 0.9", ({"lr": 0.001, "momentum": 0.9}, {"name": "fedavg"})),
            ("FedAdam lr 0.01 eta 0.03", _fedopt("fedadam", 0.01, 0.03)),
            ("FedAdam lr 0.01 eta 0.003", _fedopt("fedadam", 0.01, 0.003)),
            ("FedYogi lr 0.01 eta 0.03", _fedopt("fedyogi", 0.01, 0.03)),
            ("FedAdam lr 0.001 eta 0.01", _fedopt("fedadam", 0.001, 0.01)),
            ("FedAvg lr 0.01 20 steps", ({"lr": 0.01, "local_steps": 20}, {"name": "fedavg"})),
            ("MLP-16 FedAvg lr 0.01", ({"lr": 0.01, **mlp}, {"name": "fedavg"})),
            ("MLP-16 FedAvg lr 0.003", ({"lr": 0.003, **mlp}, {"name": "fedavg"})),
            ("MLP-16 FedAdam lr 0.01 eta 0.01", _fedopt("fedadam", 0.01, 0.01, **mlp)),
            ("MLP-16 FedYogi lr 0.0032 eta 0.01", _fedopt("fedyogi", 0.003162, 0.01, **mlp)),
            ("Scaffold lr 0.01 eta 1", ({"lr": 0.01}, {"name": "scaffold", "flavour": "flamby", "server_lr": 1.0})),
            ("FedProx lr 0.01 mu 0.1", ({"lr": 0.01}, {"name": "fedprox", "proximal_mu": 0.1})),
        ]
    else:
        rounds = 20
        rows = [
            ("FedAvg lr 0.1 (FLamby)", ({"lr": 0.1}, {"name": "fedavg"})),
            ("FedAdam lr 0.01 eta 0.1 (FLamby)", _fedopt("fedadam", 0.01, 0.1)),
            ("FedYogi lr 0.01 eta 0.1 (FLamby)", _fedopt("fedyogi", 0.01, 0.1)),
            ("FedAdagrad lr 0.01 eta 1 (FLamby)", _fedopt("fedadagrad", 0.01, 1.0)),
            ("FedAdam lr 0.01 eta 0.03", _fedopt("fedadam", 0.01, 0.03)),
            ("FedAdam lr 0.01 eta 0.3", _fedopt("fedadam", 0.01, 0.3)),
            ("FedYogi lr 0.01 eta 0.03", _fedopt("fedyogi", 0.01, 0.03)),
            ("FedAdam lr 0.001 eta 0.1", _fedopt("fedadam", 0.001, 0.1)),
            ("FedAdam lr 0.03 eta 0.1", _fedopt("fedadam", 0.03, 0.1)),
            ("FedAvg lr 0.01", ({"lr": 0.01}, {"name": "fedavg"})),
            ("FedAvg lr 0.03", ({"lr": 0.03}, {"name": "fedavg"})),
            ("FedAdam lr 0.01 eta 0.1 batch 32", _fedopt("fedadam", 0.01, 0.1, batch_size=32)),
            ("FedAdam lr 0.01 eta 0.1 20 steps", _fedopt("fedadam", 0.01, 0.1, local_steps=20)),
            ("FedAvg lr 0.03 batch 32", ({"lr": 0.03, "batch_size": 32}, {"name": "fedavg"})),
            ("Scaffold lr 0.01 eta 1", ({"lr": 0.01}, {"name": "scaffold", "flavour": "flamby", "server_lr": 1.0})),
        ]
    return [Candidate(label, task, strategy, rounds) for label, (task, strategy) in rows]


# --- folds ----------------------------------------------------------------------------------------


def node_frames(dataset: Dataset, workdir: Path) -> list[pd.DataFrame]:
    """Each centre's **training** rows as its node's dataset loader reads them (test rows dropped here)."""
    schema_file = workdir / f"{dataset.name}.schema.yaml"
    schema_file.write_text(yaml.safe_dump(dataset.schema, sort_keys=False), encoding="utf-8")
    schema = load_schema(schema_file)
    frames = []
    for index, frame in enumerate(dataset.centres):
        path = workdir / f"{dataset.name}-{index}.csv"
        frame[frame["split"] == "train"].to_csv(path, index=False, na_rep="")
        frames.append(load_table(path, schema).reset_index(drop=True))
    return frames


def fold_frames(frames: Sequence[pd.DataFrame], folds: int, fold: int) -> list[pd.DataFrame]:
    """The centres' training rows with fold ``fold`` of each centre as its ``test`` split."""
    out = []
    for centre, frame in enumerate(frames):
        order = np.random.default_rng(FOLD_SEED + centre).permutation(len(frame))
        held_out = np.zeros(len(frame), dtype=bool)
        held_out[order[fold::folds]] = True
        copy = frame.copy()
        copy["split"] = np.where(held_out, "test", "train")
        out.append(copy)
    return out


# --- one federated job in process -----------------------------------------------------------------


@dataclass
class _Keeper:
    """A round observer that keeps the global model after every round."""

    models: list[dict[str, torch.Tensor]] = field(default_factory=list)

    def round_started(self, server_round: int, *, attempt: int, deadline: float) -> None:
        """Nothing to do."""

    def round_finished(
        self, server_round: int, *, completed: bool, attempts: int, outcomes: Sequence[NodeOutcome], started: float
    ) -> None:
        """Nothing to do."""

    def state_saved(self, state: DriverState) -> None:
        """Keep the round's global model."""
        self.models.append({name: torch.from_numpy(array.numpy().copy()) for name, array in state.arrays.items()})

    def should_stop(self) -> bool:
        """Never."""
        return False


def _loaded(loaded: LoadedSource, source: Source) -> LoadedSource:
    """The node's one source: its fold frame (whatever the task names)."""
    return loaded


def run_job(spec: LearningSpec, frames: Sequence[pd.DataFrame], seed: int) -> list[dict[str, torch.Tensor]]:
    """The global model after each round of ``spec`` on nodes holding ``frames`` (fresh nodes per job)."""
    hosts: dict[int, ClientAppHost] = {}
    for index, frame in enumerate(frames):
        node_id = flower_node_id(f"flamby-search-{index}")
        app = learning_app(functools.partial(_loaded, LoadedSource(frame, f"fold-{index}")))
        hosts[node_id] = ClientAppHost(node_id=node_id, apps={"learning": InstalledApp(app)})

    def endpoint(host: ClientAppHost) -> Any:
        def call(payload: bytes, *, job_id: str) -> bytes:
            return host.handle(
                payload, job_id=job_id, app="learning", allowed_message_types=frozenset({"train", "evaluate"})
            )

        return call

    keeper = _Keeper()
    with InMemoryTransport({node_id: endpoint(host) for node_id, host in hosts.items()}) as transport:
        grid = MedfedGrid(transport, job_id=str(uuid.uuid4()))
        FedAvgDriver(grid, spec, seed=seed, observer=keeper).run(initial_state(spec, seed))
    return keeper.models


@dataclass
class Result:
    """A candidate's validation score after each round, per fold."""

    candidate: Candidate
    per_fold: list[list[float]]  # [fold][round - 1]
    seconds: float

    def curve(self) -> list[float]:
        """The mean over folds after each round."""
        return [statistics.fmean(scores) for scores in zip(*self.per_fold, strict=True)]

    def best(self) -> tuple[int, float, float]:
        """``(rounds, mean, sd over folds)`` of the best number of rounds (ties: fewer rounds)."""
        curve = self.curve()
        index = max(range(len(curve)), key=lambda i: (round(curve[i], 6), -i))
        return index + 1, curve[index], statistics.stdev(fold[index] for fold in self.per_fold)


def cross_validate(dataset: Dataset, frames: Sequence[pd.DataFrame], candidate: Candidate, folds: int) -> Result:
    """Run ``candidate`` on every fold; score every round's model on the pooled held-out fold."""
    started = time.perf_counter()
    spec = parse_spec(candidate.spec(dataset, candidate.max_rounds))
    assert isinstance(spec, LearningSpec)
    model_changes = {key: candidate.task[key] for key in ("model", "hidden") if key in candidate.task}
    per_fold = []
    for fold in range(folds):
        cv = fold_frames(frames, folds, fold)
        validation = pooled_split(cv, spec)
        models = run_job(spec, cv, JOB_SEED + fold)
        per_fold.append([score(dataset, model, validation, model_changes) for model in models])
    return Result(candidate, per_fold, time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the search and print one line per candidate, a table, and the chosen configuration."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dataset", choices=("heart", "tcga"), required=True)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--budget-s", type=float, default=1200.0, help="stop starting candidates after this")
    parser.add_argument("--out", type=Path, help="write every candidate's curve and the choice as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("flwr").setLevel(logging.WARNING)  # one line per round and phase otherwise
    ensure_task_identity()
    dataset = load_dataset(args.dataset)
    print(f"FLamby {args.dataset}: {args.folds}-fold CV inside the training splits; {machine()}", flush=True)
    started = time.perf_counter()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="medfed-flamby-search-") as folder:
        frames = node_frames(dataset, Path(folder))
        for candidate in candidates(args.dataset):
            if time.perf_counter() - started > args.budget_s:
                print(f"budget spent: {candidate.label} and later candidates not run", flush=True)
                break
            result = cross_validate(dataset, frames, candidate, args.folds)
            results.append(result)
            rounds, mean, sd = result.best()
            print(
                f"{candidate.label}: best validation {dataset.metric} {mean:.4f} (sd over folds {sd:.4f}) at "
                f"round {rounds}/{candidate.max_rounds}; {result.seconds:.0f} s",
                flush=True,
            )
    chosen = max(results, key=lambda r: round(r.best()[1], 6))  # max keeps the first of equals
    rounds, mean, sd = chosen.best()
    rows = [[r.candidate.label, str(r.best()[0]), f"{r.best()[1]:.4f} ± {r.best()[2]:.4f}"] for r in results]
    print_table(
        f"FLamby {args.dataset}: validation {dataset.metric} (mean ± sd over folds)",
        ["candidate", "rounds", "validation"],
        rows,
    )
    choice = {
        "label": chosen.candidate.label,
        "rounds": rounds,
        "validation": mean,
        "validation_sd": sd,
        "task": dict(chosen.candidate.task),
        "strategy": dict(chosen.candidate.strategy),
    }
    print(f"chosen: {json.dumps(choice)}; search took {time.perf_counter() - started:.0f} s", flush=True)
    if args.out:
        document = {
            "dataset": args.dataset,
            "folds": args.folds,
            "chosen": choice,
            "candidates": [
                {
                    "label": r.candidate.label,
                    "task": dict(r.candidate.task),
                    "strategy": dict(r.candidate.strategy),
                    "per_fold": r.per_fold,
                    "seconds": r.seconds,
                }
                for r in results
            ],
        }
        args.out.write_text(json.dumps(document, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
