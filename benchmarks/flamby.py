"""FLamby reproduction: Fed-Heart-Disease and Fed-TCGA-BRCA as medfed learning jobs on a running network.

Each FLamby centre is one node (``medfed node start`` processes, :mod:`benchmarks.network`) that registers
its own rows as a tabular dataset (``heart`` / ``tcga``) with FLamby's train/test split as a column; the
coordinator (TLS, in this process) runs ``learning`` jobs submitted through its REST API
(:class:`medfed.sdk.Federation`). Per job the harness reads

* the **client-test** metric: the mean over centres of each node's evaluation of the final model on its
  own test split (FLamby's bar: accuracy for heart, C-index for TCGA), from the job's last round;
* the **pooled-test** metric: the harness exports the final model (``GET /api/jobs/{id}/model``, saved as
  a torch state dict and loaded back with ``weights_only=True``) and scores it on the pooled test split
  it holds (the coordinator holds no data). As in FLamby, the pooled heart test rows are standardised
  with the pooled training rows' statistics; TCGA inputs are used as they are. C-index as
  ``lifelines.utils.concordance_index(T, -risk, E)``.

Settings, fixed before running, from FLamby's published runs (the seed CSVs in
``../shared/data/fed_*/benchmark_results``, and ``flamby/datasets/fed_*/common.py``): 100 local batch
updates per round; heart: batch 4, 15 rounds (``get_nb_max_rounds(100)``), logistic regression, per-centre
standardisation; TCGA: batch 8, 5 rounds, linear Cox model, raw inputs; per strategy the client learning
rate, server learning rate, FedProx mu, FedOpt tau 1e-8 / beta1 0.9 / beta2 0.999 of the CSVs; client
optimizer SGD. FedOpt strategies run as FLamby defines them (``flavour: flamby``); ``-flower`` rows run
Flower's own classes with the same learning rates. ``Scaffold`` is FLamby's (server learning rate 1 from
its CSVs; :class:`coordinator.federation.strategies.Scaffold`). ``Cyclic`` runs FLamby's Cyclic as its code behaves
(no weight transfer; the model is client 0's: :class:`coordinator.federation.strategies.FlambyCyclic`);
``Cyclic-transfer`` is cyclic weight transfer as the method is described (medfed's ``Cyclic``).
Heart's ``chol = 0`` ("not measured" in the shipped schema) is kept as a value, as FLamby keeps it; rows
FLamby drops (missing values in the columns it uses) have no split and are left out by the job.

Pass, per strategy FLamby reports: ``|mean_medfed - mean_FLamby| <= 2 * sqrt(sd_medfed^2/5 + sd_FLamby^2/5)``
on the pooled-test metric (sd over seeds).

**Aim higher** (``--aim-higher``): the configuration chosen by cross-validation inside the training splits
(:mod:`benchmarks.flamby_search`, frozen in :data:`AIM_HIGHER`, or ``--config`` a search's JSON output), run
on the same seeds through the same network and scored on the pooled test split, next to FLamby's best
federated row and its pooled training.

Usage: python benchmarks/flamby.py --dataset heart|tcga [--seeds 5] [--strategy FedAvg ...] (names in any case)
       python benchmarks/flamby.py --dataset heart|tcga --aim-higher [--config SEARCH.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from lifelines.utils import concordance_index  # type: ignore[import-untyped]  # no stubs or py.typed

if not __package__:  # run as a file (python benchmarks/NAME.py): put the repo root on sys.path
    import _script  # type: ignore[import-not-found]  # noqa: F401  # benchmarks/_script.py

from benchmarks.network import Network, machine, medfed_network, print_table
from common.models import build_model
from common.models.checkpoints import load_state_dict
from common.models.features import apply_standardization, standardization_stats, table_rows
from common.models.metrics import binary_accuracy
from coordinator.federation.jobs.learning import LearningSpec
from coordinator.store import nodes
from medfed.sdk import Federation
from node.datasets.registry import register_dataset
from node.datasets.schema import load_schema

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MEDFED_TEST_DATA", REPO.parent / "shared" / "data"))
SCHEMAS = Path(__file__).resolve().parent / "datasets"
FIRST_SEED = 42
HEART_COLUMNS = (
    "age sex cp trestbps chol fbs restecg thalach exang oldpeak slope ca thal num".split()  # noqa: SIM905
)
HEART_FILES = ("cleveland", "hungarian", "switzerland", "va")
TCGA_CENTRES = 6


@dataclass(frozen=True)
class Strategy:
    """A row of the table: FLamby's method name and how medfed runs it."""

    label: str
    flamby_method: str | None  # the Method of FLamby's CSVs whose settings (and numbers) it uses
    name: str
    flavour: str = "flamby"


STRATEGIES = {
    s.label: s
    for s in (
        Strategy("FedAvg", "FedAvg100", "fedavg"),
        Strategy("FedProx", "FedProx100", "fedprox"),
        Strategy("FedAdam", "FedAdam100", "fedadam"),
        Strategy("FedYogi", "FedYogi100", "fedyogi"),
        Strategy("FedAdagrad", "FedAdagrad100", "fedadagrad"),
        Strategy("Scaffold", "Scaffold100", "scaffold"),
        Strategy("Cyclic", "Cyclic100", "cyclic"),
        Strategy("Cyclic-transfer", "Cyclic100", "cyclic", "flower"),
        Strategy("FedAdam-flower", "FedAdam100", "fedadam", "flower"),
        Strategy("FedYogi-flower", "FedYogi100", "fedyogi", "flower"),
        Strategy("FedAdagrad-flower", "FedAdagrad100", "fedadagrad", "flower"),
    )
}
AIM_HIGHER: dict[str, dict[str, Any]] = {
    "heart": {
        "label": "FedAvg lr 0.001 momentum 0.9",
        "rounds": 9,
        "validation": 0.8024,
        "validation_sd": 0.0369,
        "task": {"lr": 0.001, "momentum": 0.9},
        "strategy": {"name": "fedavg"},
    },
    "tcga": {
        "label": "FedAvg lr 0.03 batch 32",
        "rounds": 20,
        "validation": 0.6983,
        "validation_sd": 0.0271,
        "task": {"lr": 0.03, "batch_size": 32},
        "strategy": {"name": "fedavg"},
    },
}
"""Per dataset, the configuration ``python benchmarks/flamby_search.py`` chose (its ``chosen`` entry; run of
2026-11-26, 4 folds, 1,200 s per dataset: ``benchmarks/README.md``)."""
FLAMBY_BEST = {
    "heart": ("Cyclic100", "FLamby best federated (Cyclic)"),
    "tcga": ("FedAdam100", "FLamby best federated (FedAdam)"),
}
"""FLamby's best federated pooled-test row per dataset (heart 0.785, TCGA 0.842)."""
DEFAULT_STRATEGIES = ("FedAvg", "FedProx", "FedAdam", "FedYogi", "FedAdagrad", "Scaffold", "Cyclic", "Cyclic-transfer")


@dataclass(frozen=True)
class Dataset:
    """One FLamby dataset as a medfed job: its centres' rows, the task, FLamby's settings and numbers."""

    name: str
    metric: str  # "accuracy" or "c-index"
    centres: list[pd.DataFrame]
    schema: dict[str, Any]
    task: dict[str, Any]
    rounds: int
    results: pd.DataFrame  # FLamby's seed CSVs, concatenated
    summary: pd.DataFrame  # summary_derived.csv
    pooled_test: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] = field(repr=False)


# --- data -----------------------------------------------------------------------------------------


def heart_centres(root: Path) -> list[pd.DataFrame]:
    """Each hospital's 14 columns as in its UCI file, plus FLamby's ``split`` ("" for rows FLamby drops)."""
    split = pd.read_csv(root / "flamby_split_reproduced.csv")
    centres = []
    for centre, name in enumerate(HEART_FILES):
        frame = pd.read_csv(root / f"processed.{name}.data", header=None, names=HEART_COLUMNS, na_values="?")
        mine = split[split["center_id"] == centre].set_index("line_index")["split"]
        frame["split"] = mine.reindex(frame.index).fillna("")
        centres.append(frame)
    return centres


def tcga_centres(root: Path) -> list[pd.DataFrame]:
    """Each region's rows of ``brca.csv`` (in file order, columns under :func:`policy_name`) plus FLamby's
    ``split`` from ``fold2``."""
    brca = pd.read_csv(root / "brca.csv")
    folds = pd.read_csv(root / "train_test_split.csv").set_index("pid")["fold2"]
    fold2 = brca["pid"].map(folds)
    centres = []
    for centre in range(TCGA_CENTRES):
        mine = fold2.isin([f"train_{centre}", f"test_{centre}"])
        frame = brca[mine].reset_index(drop=True).rename(columns=policy_name)
        frame["split"] = fold2[mine].str.split("_").str[0].to_numpy()
        centres.append(frame)
    return centres


def policy_name(column: str) -> str:
    """``column`` with every character but letters, digits and ``_`` written as ``_``.

    A node's policy admits only column names of that shape (``node.policy``: nothing else reaches its
    rules), and several TCGA columns hold spaces and brackets (``ajcc_pathologic_n_N0 (i-)``); the
    benchmark registers them under these names (all distinct) and the task names them so.
    """
    return re.sub(r"[^A-Za-z0-9_]", "_", column)


def _schema(shipped: str, *, keep_zero_chol: bool) -> dict[str, Any]:
    schema: dict[str, Any] = yaml.safe_load((SCHEMAS / shipped).read_text(encoding="utf-8"))
    for column in schema["columns"]:
        column["name"] = policy_name(column["name"])
    schema["csv"] = {"header": True, "delimiter": ","}
    for column in schema["columns"]:
        if keep_zero_chol and column["name"] == "chol":
            column.pop("missing_values", None)  # FLamby keeps chol = 0 as a value
    schema["columns"].append({"name": "split", "type": "string", "description": "FLamby's train/test split"})
    return schema


def _flamby_results(folder: Path, prefix: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    seeds = [pd.read_csv(folder / f"{prefix}_seed{seed}.csv") for seed in range(42, 47)]
    return pd.concat(seeds, ignore_index=True), pd.read_csv(folder / "summary_derived.csv")


def load_dataset(name: str) -> Dataset:
    """The dataset ``heart`` or ``tcga`` with its task and pooled test split."""
    if name == "heart":
        root = DATA / "fed_heart_disease"
        centres = heart_centres(root)
        task: dict[str, Any] = {
            "model": "logistic_regression",
            "source": {"dataset": "heart"},
            "features": ["age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak"],
            "categorical": [{"column": "cp", "levels": [1, 2, 3, 4]}, {"column": "restecg", "levels": [0, 1, 2]}],
            "target": "num",
            "split": {"column": "split"},
            "standardize": "node_train",
            "local_steps": 100,
            "batch_size": 4,
        }
        results, summary = _flamby_results(root / "benchmark_results", "heart")
        rounds, metric = (486 // 4 // 4) * 50 // 100, "accuracy"  # FLamby's get_nb_max_rounds(100): 15
        schema = _schema("fed_heart_disease.schema.yaml", keep_zero_chol=True)
    else:
        root = DATA / "fed_tcga_brca"
        centres = tcga_centres(root)
        inputs = [c for c in centres[0].columns if c not in ("pid", "E", "T", "split")]
        task = {
            "model": "cox_linear",
            "source": {"dataset": "tcga"},
            "features": inputs,
            "event": "E",
            "time": "T",
            "split": {"column": "split"},
            "standardize": "none",
            "local_steps": 100,
            "batch_size": 8,
        }
        results, summary = _flamby_results(root / "benchmark_results", "tcga")
        rounds, metric = (866 // 6 // 8) * 30 // 100, "c-index"  # FLamby's get_nb_max_rounds(100): 5
        schema = _schema("fed_tcga_brca.schema.yaml", keep_zero_chol=False)
    spec = LearningSpec.model_validate({**task, "lr": 0.01})
    return Dataset(name, metric, centres, schema, task, rounds, results, summary, _pooled_test(centres, spec, name))


def _pooled_test(
    centres: Sequence[pd.DataFrame], spec: LearningSpec, name: str
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The pooled test split as FLamby scores on it (heart: standardised with the pooled training rows)."""
    x, y = pooled_split(centres, spec)
    expected = {"heart": 254, "tcga": 222}[name]
    if x.shape[0] != expected:
        raise RuntimeError(f"pooled test has {x.shape[0]} rows, FLamby's has {expected}")
    return x, y


def pooled_split(
    centres: Sequence[pd.DataFrame], spec: LearningSpec
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The rows of every centre whose ``split`` is ``test``, pooled, as FLamby's pooled test is scored.

    With ``standardize: node_train`` they are standardised with the statistics of all centres' ``train``
    rows pooled (FLamby's pooled test); otherwise used as they are. :mod:`benchmarks.flamby_search` calls
    it on frames whose ``test`` rows are a validation fold of the training split.
    """
    task = spec.task()
    x, y, rows = table_rows(pd.concat(centres, ignore_index=True), task)
    train, test = (rows["split"] == "train").to_numpy(), (rows["split"] == "test").to_numpy()
    if task.standardize == "node_train":
        mean, std = standardization_stats(x[train])
        x = apply_standardization(x, mean, std)
    return x[test].astype(np.float32), y[test]


# --- jobs -----------------------------------------------------------------------------------------


def job_spec(dataset: Dataset, strategy: Strategy, first_node: int) -> dict[str, Any]:
    """The learning job of ``strategy`` with FLamby's settings for it (from its seed CSVs).

    ``first_node`` (Flower id) is FLamby's client 0, whose model FLamby's Cyclic returns.
    """
    rows = dataset.results[dataset.results["Method"] == strategy.flamby_method]
    settings = rows.iloc[0]
    spec: dict[str, Any] = {
        **dataset.task,
        "kind": "learning",
        "lr": float(settings["learning_rate"]),
        "rounds": dataset.rounds,
        "quorum": len(dataset.centres),
        "round_timeout_s": 120,
        "strategy": {"name": strategy.name, "flavour": strategy.flavour},
    }
    if strategy.name == "fedprox":
        spec["strategy"]["proximal_mu"] = float(settings["mu"])
    if strategy.name == "scaffold":
        spec["strategy"]["server_lr"] = float(settings["server_learning_rate"])
    if strategy.name == "cyclic" and strategy.flavour == "flamby":
        spec["strategy"]["reference_node"] = first_node
    if strategy.name in ("fedadam", "fedyogi", "fedadagrad"):
        spec["strategy"]["server_lr"] = float(settings["server_learning_rate"])
        spec["strategy"]["tau"] = float(settings["tau"])
        if strategy.name != "fedadagrad" or strategy.flavour == "flamby":
            spec["strategy"]["beta1"] = float(settings["beta1"])
        if strategy.name != "fedadagrad":
            spec["strategy"]["beta2"] = float(settings["beta2"])
    return spec


def score_pooled(dataset: Dataset, model_file: Path) -> float:
    """The pooled-test metric of the exported model in ``model_file``."""
    return score(dataset, load_state_dict(model_file), dataset.pooled_test)


def score(
    dataset: Dataset,
    state_dict: Mapping[str, torch.Tensor],
    rows: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    task_changes: Mapping[str, Any] | None = None,
) -> float:
    """The dataset's metric of the model ``state_dict`` on ``rows`` (``(x, y)`` of :func:`pooled_split`).

    ``task_changes`` (``model``, ``hidden``) name another model of the registry than the dataset's task.
    """
    task = LearningSpec.model_validate({**dataset.task, **(task_changes or {}), "lr": 0.01}).task()
    model = build_model(task.model, **task.model_params(), seed=0)
    model.load_state_dict(dict(state_dict))
    model.eval()
    x, y = rows
    with torch.no_grad():
        scores = model(torch.from_numpy(x)).reshape(-1).numpy().astype(np.float64)
    if dataset.metric == "accuracy":
        return binary_accuracy(scores, y)
    return float(concordance_index(y[:, 1], -scores, y[:, 0]))


@dataclass
class Outcome:
    """One job's numbers."""

    client: float
    pooled: float
    seconds: float
    per_centre: list[float]


def run_job(network: Network, client: Federation, dataset: Dataset, strategy: Strategy, seed: int) -> Outcome:
    """Submit one job, wait for it, export its model and score it."""
    return run_spec(network, client, dataset, job_spec(dataset, strategy, network.nodes[0].flower_node_id), seed)


def aim_higher_spec(dataset: Dataset, chosen: Mapping[str, Any]) -> dict[str, Any]:
    """The learning job of a configuration chosen by :mod:`benchmarks.flamby_search`."""
    return {
        **dataset.task,
        **chosen["task"],
        "kind": "learning",
        "rounds": int(chosen["rounds"]),
        "quorum": len(dataset.centres),
        "round_timeout_s": 120,
        "strategy": dict(chosen["strategy"]),
    }


def run_spec(network: Network, client: Federation, dataset: Dataset, spec: Mapping[str, Any], seed: int) -> Outcome:
    """Submit the job ``spec``, wait for it, export its final model and score it on the pooled test split."""
    started = time.perf_counter()
    job = client.submit(dict(spec), seed=seed)
    done = client.wait(job["id"], timeout=1800)
    seconds = time.perf_counter() - started
    if done["status"] != "succeeded":
        raise RuntimeError(f"seed {seed}: job {done['status']}: {done.get('error')}")
    key = "eval_acc" if dataset.metric == "accuracy" else "eval_cindex"
    last = done["rounds"][-1]["per_node"]
    names = [
        nodes.get_node_by_flower_id(network.coordinator.engine, flower_node_id=site.flower_node_id).id
        for site in network.nodes
    ]
    per_centre = [float(last[name]["evaluate_metrics"][key]) for name in names]
    with tempfile.TemporaryDirectory() as folder:
        model_file = Path(folder) / "model.pt"
        server_round, final = client.save_model(job["id"], model_file)
        if not final or server_round != spec["rounds"]:
            raise RuntimeError(f"exported model of round {server_round} (final: {final})")
        model_changes = {key: spec[key] for key in ("model", "hidden") if key in spec}
        pooled = score(dataset, load_state_dict(model_file), dataset.pooled_test, model_changes)
    return Outcome(statistics.fmean(per_centre), pooled, seconds, per_centre)


# --- report ---------------------------------------------------------------------------------------


def _sd(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def report(dataset: Dataset, strategy: Strategy, outcomes: Sequence[Outcome]) -> list[str]:
    """Print the strategy's line; return its table row."""
    client = [o.client for o in outcomes]
    pooled = [o.pooled for o in outcomes]
    row = dataset.summary[dataset.summary["method"] == strategy.flamby_method].iloc[0]
    flamby_mean, flamby_sd = float(row["pooled_test_mean"]), float(row["pooled_test_std"])
    bound = 2 * math.sqrt(_sd(pooled) ** 2 / 5 + flamby_sd**2 / 5)
    gap = abs(statistics.fmean(pooled) - flamby_mean)
    verdict = "pass" if gap <= bound else "FAIL"
    print(
        f"{strategy.label}: client-test {dataset.metric} {statistics.fmean(client):.3f} (sd {_sd(client):.3f}), "
        f"pooled-test {dataset.metric} {statistics.fmean(pooled):.3f} (sd {_sd(pooled):.3f}) over {len(pooled)} "
        f"seed(s); FLamby pooled {flamby_mean:.3f} ± {flamby_sd:.3f}, client "
        f"{float(row['mean_over_client_tests_and_seeds']):.3f}; |diff| {gap:.3f} vs bound {bound:.3f}: {verdict}; "
        f"{statistics.fmean(o.seconds for o in outcomes):.1f} s per job",
        flush=True,
    )
    return [
        strategy.label,
        f"{statistics.fmean(client):.3f} ± {_sd(client):.3f}",
        f"{float(row['mean_over_client_tests_and_seeds']):.3f} ± {float(row['std_across_seeds']):.3f}",
        f"{statistics.fmean(pooled):.3f} ± {_sd(pooled):.3f}",
        f"{flamby_mean:.3f} ± {flamby_sd:.3f}",
        f"{gap:.3f} / {bound:.3f} {verdict}",
        str(len(pooled)),
    ]


def _label(name: str) -> str:
    """The table label ``name`` spells in any case (``scaffold`` is ``Scaffold``); unknown names pass through."""
    return next((label for label in STRATEGIES if label.lower() == name.lower()), name)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the reproduction and print one line per strategy and a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dataset", choices=("heart", "tcga"), required=True)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 42, 43, ... (FLamby's are 42-46)")
    parser.add_argument("--aim-higher", action="store_true", help="run the configuration chosen by flamby_search")
    parser.add_argument("--config", type=Path, help="with --aim-higher: a flamby_search --out file to run instead")
    parser.add_argument(
        "--strategy",
        action="append",
        type=_label,
        choices=sorted(STRATEGIES),
        help="repeatable, any case; default: all but the -flower rows",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dataset = load_dataset(args.dataset)
    if args.aim_higher:
        chosen = json.loads(args.config.read_text())["chosen"] if args.config else AIM_HIGHER[args.dataset]
        aim_higher(dataset, chosen, list(range(FIRST_SEED, FIRST_SEED + args.seeds)))
        return
    labels = args.strategy or list(DEFAULT_STRATEGIES)
    seeds = list(range(FIRST_SEED, FIRST_SEED + args.seeds))
    print(f"FLamby {args.dataset}: {len(dataset.centres)} nodes, seeds {seeds}; {machine()}", flush=True)
    rows: list[list[str]] = []
    with flamby_network(dataset) as (network, client):
        for label in labels:
            strategy = STRATEGIES[label]
            outcomes = [run_job(network, client, dataset, strategy, seed) for seed in seeds]
            rows.append(report(dataset, strategy, outcomes))
    print_table(
        f"FLamby {args.dataset} ({dataset.metric}), medfed vs FLamby, mean ± sd over seeds",
        [
            "strategy",
            "medfed client-test",
            "FLamby client-test",
            "medfed pooled-test",
            "FLamby pooled-test",
            "|diff| / bound",
            "seeds",
        ],
        rows,
    )


@contextmanager
def flamby_network(dataset: Dataset) -> Iterator[tuple[Network, Federation]]:
    """A running network with one node per centre, each holding its centre's rows, and the researcher's client."""
    with tempfile.TemporaryDirectory(prefix="medfed-flamby-") as folder:
        workdir = Path(folder)
        with medfed_network(workdir, len(dataset.centres)) as network:
            _register(network, dataset, workdir)
            ca_file = workdir / "ca.pem"
            ca_file.write_bytes(network.coordinator.identity.ca_pem)
            with network.researcher.federation(network.coordinator.url, ca_file) as client:
                yield network, client


def aim_higher(dataset: Dataset, chosen: Mapping[str, Any], seeds: Sequence[int]) -> None:
    """Run the chosen configuration on ``seeds`` through the network; print it beside FLamby's best rows."""
    spec = aim_higher_spec(dataset, chosen)
    print(
        f"FLamby {dataset.name}, aim higher: {chosen['label']}, {spec['rounds']} rounds; seeds {list(seeds)}; "
        f"CV validation {float(chosen['validation']):.3f}; {machine()}",
        flush=True,
    )
    with flamby_network(dataset) as (network, client):
        outcomes = [run_spec(network, client, dataset, spec, seed) for seed in seeds]
    pooled = [o.pooled for o in outcomes]
    client_means = [o.client for o in outcomes]
    mean, sd = statistics.fmean(pooled), _sd(pooled)
    rows = [
        [
            f"medfed: {chosen['label']}, {spec['rounds']} rounds",
            f"{statistics.fmean(client_means):.3f} ± {_sd(client_means):.3f}",
            f"{mean:.3f} ± {sd:.3f}",
            ", ".join(f"{p:.3f}" for p in pooled),
        ]
    ]
    method, label = FLAMBY_BEST[dataset.name]
    for name, shown in ((method, label), ("Pooled Training", "FLamby pooled training")):
        row = dataset.summary[dataset.summary["method"] == name].iloc[0]
        rows.append(
            [
                shown,
                f"{float(row['mean_over_client_tests_and_seeds']):.3f} ± {float(row['std_across_seeds']):.3f}",
                f"{float(row['pooled_test_mean']):.3f} ± {float(row['pooled_test_std']):.3f}",
                "",
            ]
        )
    best = dataset.summary[dataset.summary["method"] == method].iloc[0]
    best_mean, best_sd = float(best["pooled_test_mean"]), float(best["pooled_test_std"])
    bound = 2 * math.sqrt(sd**2 / len(pooled) + best_sd**2 / 5)
    verdict = "above" if mean > best_mean + bound else "below" if mean < best_mean - bound else "within the noise of"
    print(
        f"aim higher: pooled-test {dataset.metric} {mean:.3f} (sd {sd:.3f}) over {len(pooled)} seed(s); "
        f"{label} {best_mean:.3f} ± {best_sd:.3f}: {verdict} it (bound {bound:.3f})",
        flush=True,
    )
    print_table(
        f"FLamby {dataset.name} ({dataset.metric}), aim higher, mean ± sd over seeds",
        ["configuration", "client-test", "pooled-test", "per seed"],
        rows,
    )


def _register(network: Network, dataset: Dataset, workdir: Path) -> None:
    """Each node registers its centre's rows as the dataset the task names."""
    schema_file = workdir / f"{dataset.name}.schema.yaml"
    schema_file.write_text(yaml.safe_dump(dataset.schema, sort_keys=False), encoding="utf-8")
    schema = load_schema(schema_file)
    for index, (site, frame) in enumerate(zip(network.nodes, dataset.centres, strict=True)):
        path = workdir / f"{dataset.name}-{index}.csv"
        frame.to_csv(path, index=False, na_rep="")
        register_dataset(site.data_dir, dataset.name, path, schema)


if __name__ == "__main__":
    main()
