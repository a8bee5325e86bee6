"""Analysis jobs end to end over the TLS channel equal the pooled statistics (disclosure control off).

One network for the module: a coordinator (its app's runner runs the jobs) and six enrolled nodes with
their channels. Every node registers its region of Fed-TCGA-BRCA (FLamby's ``fold2`` split) as the
tabular dataset ``tcga``; the first four also register one Fed-Heart-Disease hospital file each as
``heart`` (``chol = 0`` is a declared missing-value code). Heart jobs name those four nodes. Reference
values come from numpy, statsmodels and lifelines on the pooled rows, read from the same files.
"""

from __future__ import annotations

import csv
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm  # type: ignore[import-untyped]  # no stubs or py.typed
import yaml
from flwr.app import MessageType
from lifelines import KaplanMeierFitter  # type: ignore[import-untyped]  # no stubs or py.typed
from statsmodels.duration.hazard_regression import PHReg  # type: ignore[import-untyped]  # no stubs
from typer.testing import CliRunner

from common.analytics.task import PARTIAL_KEY, RECORD, from_wire
from common.flower import deterministic_message_id, ensure_task_identity, message_from_bytes
from common.privacy.policy import DisclosurePolicy
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.runner import JobRunner
from coordinator.store import jobs, messages
from medfed.cli import app as cli
from medfed.sdk import Federation, FederationError
from node.config import NodeSettings
from node.datasets.loader import load_table
from node.datasets.registry import register_dataset
from node.datasets.schema import load_schema
from node.federation.service import build_host
from node.identity import enrol
from node.runtime import init_node, open_service
from tests.integration.test_channel import Node
from tests.integration.test_enrolment import Coordinator, running_coordinator
from tests.researchers import add_researcher
from tests.unit.analytics.reference import (
    COX_FEATURES,
    HEART_CENTERS,
    HEART_FEATURES,
    as_float,
    max_relative_error,
    pooled,
    pooled_with_strata,
)

JOB_WAIT_S = 120
TOLERANCE = 1e-6
REPO_ROOT = Path(__file__).resolve().parents[2]
HEART_SCHEMA = REPO_ROOT / "benchmarks" / "datasets" / "fed_heart_disease.schema.yaml"
TCGA_SCHEMA = REPO_ROOT / "benchmarks" / "datasets" / "fed_tcga_brca.schema.yaml"
TCGA_REGION_SIZES = [311, 196, 206, 162, 162, 51]


@dataclass
class AnalysisNetwork:
    """The coordinator, six nodes, API clients, and each node's tables as registered (for references)."""

    coordinator: Coordinator
    nodes: list[Node]
    researcher: Federation
    cli_env: dict[str, str]
    heart: list[pd.DataFrame]
    heart_sha256: list[str]
    tcga: list[pd.DataFrame]

    @property
    def runner(self) -> JobRunner:
        runner: JobRunner = self.coordinator.app.state.runner
        return runner

    @property
    def heart_nodes(self) -> list[str]:
        return [node.identity.node_id for node in self.nodes[: len(HEART_CENTERS)]]

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Submit an analysis spec as a researcher and return the ended job (its worker joined, not polled)."""
        job = self.researcher.submit_analysis(spec)
        assert self.runner.join(job["id"], JOB_WAIT_S), "the job did not end in time"
        return self.researcher.job(job["id"])

    def heart_frame(self, analysis: str, params: dict[str, Any], **spec: Any) -> pd.DataFrame:
        job = self.run(
            {"analysis": analysis, "params": params, "source": {"dataset": "heart"}, "nodes": self.heart_nodes, **spec}
        )
        assert job["status"] == "succeeded", job["error"]
        return self.researcher.analysis_result(job["id"])

    def tcga_result(self, analysis: str, params: dict[str, Any]) -> dict[str, Any]:
        job = self.run({"analysis": analysis, "params": params, "source": {"dataset": "tcga"}})
        assert job["status"] == "succeeded", job["error"]
        result: dict[str, Any] = self.researcher.results(job["id"])["result"]
        return result


def _tcga_regions(shared_data: Path, folder: Path) -> list[Path]:
    """brca.csv split into FLamby's 6 regions, one CSV each (rows copied as text, header kept)."""
    source = shared_data / "fed_tcga_brca"
    with (source / "train_test_split.csv").open(newline="", encoding="utf-8") as handle:
        region = {row["pid"]: int(row["fold2"].rsplit("_", 1)[1]) for row in csv.DictReader(handle)}
    lines = (source / "brca.csv").read_text(encoding="utf-8").splitlines()
    paths = []
    for center in range(6):
        rows = [line for line in lines[1:] if region.get(line.split(",", 1)[0]) == center]
        path = folder / f"brca_region_{center}.csv"
        path.write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[AnalysisNetwork]:
    """A coordinator over TLS with six enrolled, connected nodes holding the FLamby datasets."""
    ensure_task_identity()
    data = tmp_path_factory.mktemp("analysis-coordinator")
    heart_schema, tcga_schema = load_schema(HEART_SCHEMA), load_schema(TCGA_SCHEMA)
    regions = _tcga_regions(shared_data, tmp_path_factory.mktemp("tcga-regions"))
    heart_files = [shared_data / "fed_heart_disease" / f"processed.{center}.data" for center in HEART_CENTERS]
    with running_coordinator(data, f"sqlite:///{data / 'coordinator.db'}") as coordinator:
        ca_file = data / "ca.pem"
        ca_file.write_bytes(coordinator.identity.ca_pem)
        nodes: list[Node] = []
        who = add_researcher(coordinator.engine, data, data / "keys")
        researcher = who.federation(coordinator.url, ca_file)
        try:
            for index, region in enumerate(regions):
                node_dir = tmp_path_factory.mktemp(f"analysis-node-{index}")
                settings = NodeSettings(data_dir=node_dir)
                init_node(settings)
                service = open_service(settings)
                register_dataset(node_dir, "tcga", region, tcga_schema)
                if index < len(heart_files):
                    register_dataset(node_dir, "heart", heart_files[index], heart_schema)
                identity = enrol(node_dir, coordinator.code(f"Site {index} {uuid.uuid4().hex[:6]}"), version="test")
                host = build_host(
                    service, identity.flower_node_id, data_dir=node_dir, disclosure=DisclosurePolicy.disabled()
                )
                node = Node(identity, service, host)
                node.connect()
                nodes.append(node)
            env = {"MEDFED_COORDINATOR_URL": coordinator.url, "MEDFED_CA_FILE": str(ca_file), **who.env()}
            yield AnalysisNetwork(
                coordinator,
                nodes,
                researcher,
                env,
                heart=[load_table(path, heart_schema) for path in heart_files],
                heart_sha256=[hashlib.sha256(path.read_bytes()).hexdigest() for path in heart_files],
                tcga=[load_table(path, tcga_schema) for path in regions],
            )
        finally:
            researcher.close()
            for node in nodes:
                node.disconnect()
                node.service.engine.dispose()


# --- Fed-Heart-Disease over 4 hospitals ---------------------------------------------------------------


def test_a_count_equals_the_pooled_count_and_names_each_snapshot(network: AnalysisNetwork) -> None:
    """Rows and non-missing values over four hospitals equal the pooled counts; each node's snapshot id is
    its dataset's SHA-256, the job ran one round with a reply from every node, and nothing was suppressed."""
    frame = network.heart_frame("count", {"columns": ["chol", "ca", "num"]})
    table = pooled(network.heart)
    counts = dict(zip(frame["column"].fillna("rows"), frame["count"], strict=True))
    assert counts == {"rows": 920, **{c: int(table[c].notna().sum()) for c in ("chol", "ca", "num")}}
    assert counts["chol"] == 920 - 23 - 123 - 56  # "?" and chol = 0 are both missing
    assert not frame["suppressed"].any()
    assert set(frame["disclosure"]) == {"none"}
    assert frame.attrs["snapshots"] == dict(zip(network.heart_nodes, network.heart_sha256, strict=True))
    assert frame.attrs["rounds"] == 1


def test_the_count_job_records_one_round_answered_by_every_selected_node(network: AnalysisNetwork) -> None:
    """The job's one round shows four replies; the two nodes without the heart data are left out, not asked."""
    job = network.run({"analysis": "count", "params": {}, "source": {"dataset": "heart"}, "nodes": network.heart_nodes})
    assert job["status"] == "succeeded"
    (only,) = job["rounds"]
    assert (only["round"], only["status"], only["replies"]) == (1, "completed", 4)
    assert sorted(only["per_node"]) == sorted(network.heart_nodes)
    statuses = {part["node_id"]: part["status"] for part in job["nodes"]}
    assert {statuses[node_id] for node_id in network.heart_nodes} == {"done"}
    assert sorted(s for n, s in statuses.items() if n not in network.heart_nodes) == ["dropped", "dropped"]


def test_a_histogram_equals_numpy_over_the_declared_bins(network: AnalysisNetwork) -> None:
    """Bin counts equal numpy.histogram of the pooled cholesterol values, cell for cell."""
    frame = network.heart_frame("histogram", {"column": "chol", "lower": 0, "upper": 800, "bins": 16})
    values = pooled(network.heart)["chol"].dropna().to_numpy(dtype=float)
    expected, edges = np.histogram(values, bins=np.linspace(0, 800, 17))
    bins = frame[frame["cell"] == "bin"]
    assert bins["count"].tolist() == expected.tolist()
    assert bins["lower"].tolist() == edges[:-1].tolist()
    cells = dict(zip(frame["cell"], frame["count"], strict=False))
    assert (cells["underflow"], cells["overflow"], cells["missing"]) == (0, 0, 920 - len(values))


def test_means_and_variances_equal_numpy(network: AnalysisNetwork) -> None:
    """Mean and sample variance of six columns equal numpy on the pooled values to relative 1e-10."""
    columns = ["age", "trestbps", "chol", "thalach", "oldpeak", "ca"]
    moments = network.heart_frame("moments", {"columns": columns}).set_index("column").to_dict("index")
    table = as_float(pooled(network.heart)[columns])
    for column in columns:
        values = table[column].dropna().to_numpy()
        assert moments[column]["n"] == len(values)
        assert max_relative_error(moments[column]["mean"], np.mean(values)) <= 1e-10
        assert max_relative_error(moments[column]["variance"], np.var(values, ddof=1)) <= 1e-10


def test_quantiles_equal_numpy_exactly(network: AnalysisNetwork) -> None:
    """Type-7 quantiles by federated bisection equal numpy.quantile of the pooled values exactly."""
    probabilities = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    params = {"column": "chol", "probabilities": probabilities, "lower": 0, "upper": 800}
    frame = network.heart_frame("quantiles", params)
    values = pooled(network.heart)["chol"].dropna().to_numpy(dtype=float)
    assert frame["quantile"].tolist() == np.quantile(values, probabilities).tolist()
    assert frame.attrs["rounds"] > 1


def test_a_crosstab_equals_pandas(network: AnalysisNetwork) -> None:
    """Sex x diagnosis counts equal pandas.crosstab of the pooled rows, every cell exactly."""
    params = {"row": "sex", "column": "num", "row_levels": [0, 1], "column_levels": [0, 1, 2, 3, 4]}
    frame = network.heart_frame("crosstab", params)
    table = pooled(network.heart)
    expected = pd.crosstab(table["sex"], table["num"]).reindex(index=[0, 1], columns=[0, 1, 2, 3, 4], fill_value=0)
    ours = frame.pivot(index="row", columns="column", values="count")
    assert ours.to_numpy().tolist() == expected.to_numpy().tolist()


def _design(table: pd.DataFrame, numeric: list[str], categorical: dict[str, list[int]]) -> pd.DataFrame:
    design = pd.DataFrame({"Intercept": 1.0}, index=table.index)
    for column in numeric:
        design[column] = table[column]
    for column, levels in categorical.items():
        for level in levels[1:]:
            design[f"{column}[{level}]"] = (table[column] == level).astype(float)
    return design


def _assert_model_matches(frame: pd.DataFrame, reference: Any) -> None:
    names = frame["term"].tolist()
    assert max_relative_error(frame["coef"], reference.params[names]) <= TOLERANCE
    assert max_relative_error(frame["std_err"], reference.bse[names]) <= TOLERANCE
    interval = reference.conf_int().loc[names]
    assert max_relative_error(frame["ci_lower"], interval[0]) <= TOLERANCE
    assert max_relative_error(frame["ci_upper"], interval[1]) <= TOLERANCE


def test_binomial_glm_on_the_13_heart_features_equals_statsmodels(network: AnalysisNetwork) -> None:
    """Logistic regression of num > 0 on FLamby's 13 features through the job equals statsmodels on the pool."""
    params = {"family": "binomial", "response": "num", "response_above": 0, "covariates": HEART_FEATURES}
    frame = network.heart_frame("glm", params)
    columns = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "num"]
    table = as_float(pooled(network.heart)[columns]).dropna()
    numeric = ["age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak"]
    design = _design(table, numeric, {"cp": [1, 2, 3, 4], "restecg": [0, 1, 2]})
    reference = sm.GLM((table["num"] > 0).astype(float), design, family=sm.families.Binomial()).fit()
    assert len(frame) == 1 + 13
    _assert_model_matches(frame, reference)
    # One design round, one round per IRLS update, one that confirms convergence.
    assert frame.attrs["rounds"] == reference.fit_history["iteration"] + 2


def test_gaussian_glm_equals_statsmodels(network: AnalysisNetwork) -> None:
    """thalach ~ age + sex + trestbps through the job equals statsmodels' gaussian GLM on the pool."""
    covariates = [{"column": "age"}, {"column": "sex"}, {"column": "trestbps"}]
    frame = network.heart_frame("glm", {"family": "gaussian", "response": "thalach", "covariates": covariates})
    table = as_float(pooled(network.heart)[["thalach", "age", "sex", "trestbps"]]).dropna()
    reference = sm.GLM(table["thalach"], _design(table, ["age", "sex", "trestbps"], {})).fit()
    assert frame["term"].tolist() == ["Intercept", "age", "sex", "trestbps"]
    _assert_model_matches(frame, reference)


def test_a_cohort_selects_the_rows_the_pooled_filter_selects(network: AnalysisNetwork) -> None:
    """Men aged 50 or more with chest pain 3 or 4 and a cholesterol value: the same rows as pandas finds."""
    cohort = {
        "all": [
            {"op": "=", "column": "sex", "value": 1},
            {"op": ">=", "column": "age", "value": 50},
            {"op": "in", "column": "cp", "values": [3, 4]},
            {"op": "not_null", "column": "chol"},
        ]
    }
    frame = network.heart_frame("moments", {"columns": ["chol"]}, cohort=cohort, columns=["sex", "age", "cp", "chol"])
    chol = frame.set_index("column").to_dict("index")["chol"]
    table = pooled(network.heart)
    chosen = table[(table["sex"] == 1) & (table["age"] >= 50) & table["cp"].isin([3, 4]) & table["chol"].notna()]
    values = chosen["chol"].to_numpy(dtype=float)
    assert chol["n"] == len(values) > 0
    assert max_relative_error(chol["mean"], values.mean()) <= 1e-10


def test_a_spec_whose_cohort_reads_an_undeclared_column_is_refused_at_submission(network: AnalysisNetwork) -> None:
    """The coordinator checks the cohort against the declared columns: 400 naming the location, no job."""
    spec = {
        "analysis": "count",
        "params": {},
        "source": {"dataset": "heart"},
        "columns": ["age"],
        "cohort": {"all": [{"op": ">", "column": "age", "value": 40}, {"op": "=", "column": "sex", "value": 1}]},
    }
    with pytest.raises(FederationError) as caught:
        network.researcher.submit_analysis(spec)
    assert (caught.value.status, caught.value.code) == (400, "invalid_analysis")


def test_a_node_that_lacks_the_dataset_fails_the_job_by_name(network: AnalysisNetwork) -> None:
    """Asked of all six nodes, the heart data is missing at two: the job fails naming a node and the catalog
    code; the four that have it do not make a partial answer."""
    job = network.run({"analysis": "count", "params": {}, "source": {"dataset": "heart"}})
    assert job["status"] == "failed"
    missing = {node.identity.node_id for node in network.nodes[len(HEART_CENTERS) :]}
    assert "refused: not_found" in job["error"]
    assert "source.dataset: not here" in job["error"]
    assert any(node_id in job["error"] for node_id in missing)
    assert network.researcher.results(job["id"])["result"] is None


def test_an_unknown_column_fails_the_job_with_a_location_hint(network: AnalysisNetwork) -> None:
    """A cohort over a column the dataset lacks is refused by every node with the cohort location only."""
    job = network.run(
        {
            "analysis": "count",
            "params": {},
            "source": {"dataset": "heart"},
            "nodes": network.heart_nodes,
            "cohort": {"op": ">", "column": "cholesterol", "value": 200},
        }
    )
    assert job["status"] == "failed"
    assert "invalid_analysis" in job["error"]
    assert "cohort.column: no such column" in job["error"]
    assert "200" not in job["error"]


def test_an_analysis_interrupted_by_a_restart_resumes_to_the_same_result(network: AnalysisNetwork) -> None:
    """A GLM job whose runner stops after step 2 (a coordinator restart) is finished by a new runner on the
    same database: steps 1-2 replay from the replies already received, each step is recorded once, and
    the result equals that of the same job run without interruption."""
    app = network.coordinator.app
    covariates = [{"column": "age"}, {"column": "sex"}, {"column": "trestbps"}]
    spec = {
        "kind": "analysis",
        "analysis": "glm",
        "params": {"family": "gaussian", "response": "thalach", "covariates": covariates},
        "source": {"dataset": "heart"},
        "nodes": network.heart_nodes,
    }
    uninterrupted = network.run(spec)
    assert uninterrupted["status"] == "succeeded", uninterrupted["error"]
    members = [node.identity.node_id for node in network.nodes]
    job_id = jobs.create_job(
        network.coordinator.engine,
        kind="analysis",
        spec=parse_spec(spec).model_dump(mode="json"),
        submitter="test",
        seed=1,
        node_ids=members,
    ).id

    def restart_after_step_two(finished: str, server_round: int) -> None:
        if finished == job_id and server_round == 2:
            first.stop()

    first = JobRunner(app.state.engine, app.state.notifier, offline_after_s=30, after_round=restart_after_step_two)
    first.submit(job_id)
    assert first.join(job_id, JOB_WAIT_S)
    halfway = network.researcher.job(job_id)
    assert halfway["status"] == "running"
    assert [(r["round"], r["status"]) for r in halfway["rounds"]] == [(1, "completed"), (2, "completed")]
    second = JobRunner(app.state.engine, app.state.notifier, offline_after_s=30)
    second.submit(job_id)
    assert second.join(job_id, JOB_WAIT_S)
    done = network.researcher.job(job_id)
    assert done["status"] == "succeeded", done["error"]
    rounds = [r["round"] for r in done["rounds"]]
    assert rounds == list(range(1, len(rounds) + 1))
    assert {r["status"] for r in done["rounds"]} == {"completed"}
    resumed = network.researcher.results(job_id)["result"]
    assert resumed == network.researcher.results(uninterrupted["id"])["result"]


def test_a_node_that_does_not_answer_fails_the_job_instead_of_being_dropped(network: AnalysisNetwork) -> None:
    """A heart node whose channel is down (still counted online) leaves its query unanswered: after the
    round's timeout the job fails, naming the node, rather than totalling three hospitals."""
    silent = network.nodes[1]
    silent.disconnect()
    try:
        job = network.run(
            {
                "analysis": "count",
                "params": {},
                "source": {"dataset": "heart"},
                "nodes": network.heart_nodes,
                "round_timeout_s": 2,
            }
        )
    finally:
        silent.connect()
    assert job["status"] == "failed"
    assert f"3 of 4 nodes answered in time (no answer from {silent.identity.node_id})" in job["error"]
    assert network.researcher.results(job["id"])["result"] is None
    (only,) = job["rounds"]
    assert (only["status"], only["per_node"][silent.identity.node_id]["train"]) == ("failed", "late")


# --- secure aggregation ---------------------------------------------------------------------------------


def _stored_partial(network: AnalysisNetwork, job_id: str, step: int, node: Node) -> dict[str, Any]:
    """The partial of ``node``'s reply to ``step`` of the job, as the coordinator stored it."""
    message_id = deterministic_message_id(job_id, step, 1, MessageType.QUERY, node.identity.flower_node_id)
    (reply,) = messages.fetch_replies(network.coordinator.engine, message_ids=[message_id])
    record = message_from_bytes(reply.payload).content.config_records[RECORD]
    partial: dict[str, Any] = from_wire(str(record[PARTIAL_KEY]))
    return partial


def test_a_secure_histogram_equals_numpy_and_the_coordinator_stores_only_masked_vectors(
    network: AnalysisNetwork,
) -> None:
    """Under secure aggregation the cholesterol histogram still equals numpy on the pooled values; the
    coordinator's stored replies hold round keys (step 1) and masked vectors (step 2) that differ from
    every node's plain vector and add up mod 2**k to exactly the plain total."""
    params = {"column": "chol", "lower": 0, "upper": 800, "bins": 16}
    job = network.run(
        {
            "analysis": "histogram",
            "params": params,
            "source": {"dataset": "heart"},
            "nodes": network.heart_nodes,
            "secure_aggregation": True,
        }
    )
    assert job["status"] == "succeeded", job["error"]
    document = network.researcher.results(job["id"])["result"]
    values = pooled(network.heart)["chol"].dropna().to_numpy(dtype=float)
    expected, _ = np.histogram(values, bins=np.linspace(0, 800, 17))
    assert document["result"]["counts"] == expected.tolist()
    assert document["rounds"] == 2
    assert document["secure_aggregation"]["suppression_min_cell"] == 1
    bits = document["secure_aggregation"]["modulus_bits"]
    total = np.zeros(16 + 4, dtype=object)
    plain_total = np.zeros(16 + 4, dtype=object)
    for node, frame in zip(network.nodes, network.heart, strict=False):
        chol = frame["chol"].dropna().to_numpy(dtype=float)
        bins, _ = np.histogram(chol, bins=np.linspace(0, 800, 17))
        plain = [*bins.tolist(), 0, 0, len(frame) - len(chol), len(frame)]
        assert set(_stored_partial(network, job["id"], 1, node)) == {"public_key", "max_value", "min_cell", "method"}
        masked = _stored_partial(network, job["id"], 2, node)["masked"]
        assert masked != plain
        total = total + np.asarray(masked, dtype=object)
        plain_total = plain_total + np.asarray(plain, dtype=object)
    assert [int(v) % (1 << bits) for v in total] == [int(v) for v in plain_total]


# --- Fed-TCGA-BRCA over 6 regions ---------------------------------------------------------------------


def test_the_tcga_regions_are_registered_as_flamby_splits_them(network: AnalysisNetwork) -> None:
    """Each node's dataset holds its FLamby region (1,088 patients in all)."""
    assert [len(frame) for frame in network.tcga] == TCGA_REGION_SIZES


def test_kaplan_meier_equals_lifelines(network: AnalysisNetwork) -> None:
    """Survival, numbers at risk, events and censorings through the job match lifelines on the pool."""
    result = network.tcga_result("kaplan_meier", {"time": "T", "event": "E"})["result"]
    table = as_float(pooled(network.tcga)[["T", "E"]])
    fitter = KaplanMeierFitter().fit(table["T"], table["E"])
    times = np.asarray(result["times"])
    events = fitter.event_table
    assert result["at_risk"] == events.loc[times, "at_risk"].astype(int).tolist()
    assert result["events"] == events.loc[times, "observed"].astype(int).tolist()
    survival = fitter.survival_function_.iloc[:, 0].loc[times].to_numpy()
    assert np.max(np.abs(np.asarray(result["survival"]) - survival)) <= 1e-9
    assert (result["n"], sum(result["events"])) == (1088, 151)


def test_cox_on_a_declared_subset_equals_phreg_stratified_by_node(network: AnalysisNetwork) -> None:
    """Log hazard ratios and standard errors through the job equal PHReg(ties='breslow', strata=node)."""
    params = {"time": "T", "event": "E", "covariates": [{"column": c} for c in COX_FEATURES]}
    document = network.tcga_result("cox", params)
    result = document["result"]
    table = pooled_with_strata(network.tcga, ["T", "E", *COX_FEATURES])
    reference = PHReg(table["T"], table[COX_FEATURES], status=table["E"], ties="breslow", strata=table["node"]).fit()
    assert result["converged"]
    assert max_relative_error(result["params"], reference.params) <= TOLERANCE
    assert max_relative_error(result["bse"], reference.bse) <= TOLERANCE
    assert (result["nobs"], result["events"], result["strata"]) == (1088, 151, 6)
    assert len(document["nodes"]) == 6


def test_the_full_39_column_cox_design_fails_the_job_as_rank_deficient(network: AnalysisNetwork) -> None:
    """All 39 TCGA features: the job fails at its design round with the rank and the dependent columns named."""
    features = [c for c in network.tcga[0].columns if c not in {"pid", "E", "T"}]
    assert len(features) == 39
    spec = {
        "analysis": "cox",
        "params": {"time": "T", "event": "E", "covariates": [{"column": c} for c in features]},
        "source": {"dataset": "tcga"},
    }
    job = network.run(spec)
    assert job["status"] == "failed"
    assert "rank-deficient design" in job["error"]
    assert "design: rank 32 < 39 parameters" in job["error"]
    assert [(r["round"], r["status"]) for r in job["rounds"]] == [(1, "failed")]


def test_a_join_on_patient_keeps_the_rows_of_the_joined_cohort(network: AnalysisNetwork) -> None:
    """Rows whose pid is in the cohort of patients aged 60 or more (a join of two sources) are those rows."""
    spec = {
        "analysis": "count",
        "params": {},
        "source": {"dataset": "tcga"},
        "cohort": {
            "op": "in_cohort",
            "column": "pid",
            "source": {"dataset": "tcga"},
            "key": "pid",
            "where": {"op": ">=", "column": "age_at_index", "value": 60},
        },
    }
    job = network.run(spec)
    assert job["status"] == "succeeded", job["error"]
    result = network.researcher.results(job["id"])["result"]["result"]
    table = pooled(network.tcga)
    assert result["rows"] == int((table["age_at_index"] >= 60).sum()) > 0


# --- researcher interfaces ----------------------------------------------------------------------------


def test_the_sdk_analyse_returns_a_dataframe(network: AnalysisNetwork) -> None:
    """Federation.analyse submits, waits and returns the Kaplan-Meier table as a DataFrame."""
    frame = network.researcher.analyse("kaplan_meier", {"time": "T", "event": "E"}, source={"dataset": "tcga"})
    assert list(frame.columns) == ["time", "at_risk", "events", "censored", "survival", "suppressed", "disclosure"]
    assert int(frame["at_risk"].iloc[0]) == 1088
    assert len(frame.attrs["snapshots"]) == 6


def test_the_cli_submits_a_yaml_spec_and_plots_the_result(network: AnalysisNetwork, tmp_path: Path) -> None:
    """``medfed job submit analysis.yaml`` runs the job; ``medfed job results JOB --plot`` writes a PNG."""
    spec_file = tmp_path / "analysis.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "kind": "analysis",
                "analysis": "histogram",
                "params": {"column": "age", "lower": 0, "upper": 120, "bins": 24},
                "source": {"dataset": "heart"},
                "nodes": network.heart_nodes,
            }
        ),
        encoding="utf-8",
    )
    runner = CliRunner()
    submitted = runner.invoke(cli, ["job", "submit", str(spec_file)], env=network.cli_env)
    assert submitted.exit_code == 0, submitted.output
    job_id = yaml.safe_load(submitted.stdout)["id"]
    assert network.runner.join(job_id, JOB_WAIT_S)
    plot = tmp_path / "histogram.png"
    shown = runner.invoke(cli, ["job", "results", job_id, "--plot", str(plot)], env=network.cli_env)
    assert shown.exit_code == 0, shown.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert yaml.safe_load(shown.stdout)["result"]["result"]["counts"][10] > 0  # ages 50-55
