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
Flower's own classes with the same learning rates. ``Cyclic`` runs FLamby's Cyclic as its code behaves
(no weight transfer; the model is client 0's: :class:`coordinator.federation.strategies.FlambyCyclic`);
``Cyclic-transfer`` is cyclic weight transfer as the method is described (medfed's ``Cyclic``).
Heart's ``chol = 0`` ("not measured" in the shipped schema) is kept as a value, as FLamby keeps it; rows
FLamby drops (missing values in the columns it uses) have no split and are left out by the job.

Pass, per strategy FLamby reports: ``|mean_medfed - mean_FLamby| <= 2 * sqrt(sd_medfed^2/5 + sd_FLamby^2/5)``
on the pooled-test metric (sd over seeds).

Usage: python -m benchmarks.flamby --dataset heart|tcga [--seeds 5] [--strategy FedAvg ...]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from lifelines.utils import concordance_index  # type: ignore[import-untyped]  # no stubs or py.typed

from benchmarks.network import Network, machine, medfed_network, print_table
from common.models import build_model
from common.models.checkpoints import load_state_dict
from common.models.features import apply_standardization, standardization_stats, table_rows
from common.models.metrics import binary_accuracy
from coordinator.federation.jobs.learning import LearningSpec
from coordinator.store import nodes
from coordinator.store.tokens import Role, create_token
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
        Strategy("Cyclic", "Cyclic100", "cyclic"),
        Strategy("Cyclic-transfer", "Cyclic100", "cyclic", "flower"),
        Strategy("FedAdam-flower", "FedAdam100", "fedadam", "flower"),
        Strategy("FedYogi-flower", "FedYogi100", "fedyogi", "flower"),
        Strategy("FedAdagrad-flower", "FedAdagrad100", "fedadagrad", "flower"),
    )
}
DEFAULT_STRATEGIES = ("FedAvg", "FedProx", "FedAdam", "FedYogi", "FedAdagrad", "Cyclic", "Cyclic-transfer")


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
    """Each region's rows of ``brca.csv`` (in file order) plus FLamby's ``split`` from ``fold2``."""
    brca = pd.read_csv(root / "brca.csv")
    folds = pd.read_csv(root / "train_test_split.csv").set_index("pid")["fold2"]
    fold2 = brca["pid"].map(folds)
    centres = []
    for centre in range(TCGA_CENTRES):
        mine = fold2.isin([f"train_{centre}", f"test_{centre}"])
        frame = brca[mine].reset_index(drop=True)
        frame["split"] = fold2[mine].str.split("_").str[0].to_numpy()
        centres.append(frame)
    return centres


def _schema(shipped: str, *, keep_zero_chol: bool) -> dict[str, Any]:
    schema: dict[str, Any] = yaml.safe_load((SCHEMAS / shipped).read_text(encoding="utf-8"))
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
    task = spec.task()
    x, y, rows = table_rows(pd.concat(centres, ignore_index=True), task)
    train, test = (rows["split"] == "train").to_numpy(), (rows["split"] == "test").to_numpy()
    if task.standardize == "node_train":
        mean, std = standardization_stats(x[train])
        x = apply_standardization(x, mean, std)
    expected = {"heart": 254, "tcga": 222}[name]
    if int(test.sum()) != expected:
        raise RuntimeError(f"pooled test has {int(test.sum())} rows, FLamby's has {expected}")
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
    task = LearningSpec.model_validate({**dataset.task, "lr": 0.01}).task()
    model = build_model(task.model, **task.model_params(), seed=0)
    model.load_state_dict(load_state_dict(model_file))
    model.eval()
    x, y = dataset.pooled_test
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
    started = time.perf_counter()
    job = client.submit(job_spec(dataset, strategy, network.nodes[0].flower_node_id), seed=seed)
    done = client.wait(job["id"], timeout=1800)
    seconds = time.perf_counter() - started
    if done["status"] != "succeeded":
        raise RuntimeError(f"{strategy.label} seed {seed}: job {done['status']}: {done.get('error')}")
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
        if not final or server_round != dataset.rounds:
            raise RuntimeError(f"exported model of round {server_round} (final: {final})")
        pooled = score_pooled(dataset, model_file)
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


def main(argv: Sequence[str] | None = None) -> None:
    """Run the reproduction and print one line per strategy and a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dataset", choices=("heart", "tcga"), required=True)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 42, 43, ... (FLamby's are 42-46)")
    parser.add_argument("--strategy", action="append", choices=sorted(STRATEGIES), help="repeatable; default: all")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dataset = load_dataset(args.dataset)
    labels = args.strategy or list(DEFAULT_STRATEGIES)
    seeds = list(range(FIRST_SEED, FIRST_SEED + args.seeds))
    print(f"FLamby {args.dataset}: {len(dataset.centres)} nodes, seeds {seeds}; {machine()}", flush=True)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="medfed-flamby-") as folder:
        workdir = Path(folder)
        with medfed_network(workdir, len(dataset.centres)) as network:
            _register(network, dataset, workdir)
            ca_file = workdir / "ca.pem"
            ca_file.write_bytes(network.coordinator.identity.ca_pem)
            token = create_token(network.coordinator.engine, role=Role.RESEARCHER)[1]
            with Federation(network.coordinator.url, token=token, ca_file=ca_file) as client:
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
