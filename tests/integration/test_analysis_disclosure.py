"""Analysis jobs with disclosure control on, end to end over the TLS channel.

One network for the module: a coordinator and four nodes, each holding one Fed-Heart-Disease hospital
file as ``heart`` and one Fed-TCGA-BRCA region as ``tcga``, each with the default policy (minimum cell
5, cell-key noise up to 5) and epsilon budgets for the researcher, both read from its
``disclosure.yaml``. Expected perturbed values are recomputed in the test from each node's disclosure
secret, so "the same records get the same noise" is checked value for value, not just as equality.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from flwr.app import MessageType

from common.analytics.task import PARTIAL_KEY, RECORD, from_wire
from common.flower import deterministic_message_id, ensure_task_identity, message_from_bytes
from common.privacy.cell_key import PTable, cell_key
from common.privacy.record_keys import RecordKeyring
from common.privacy.suppression import MarginMask, recomputable_cells
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.runner import JobRunner
from coordinator.store import jobs, messages
from medfed.sdk import Federation
from node.config import NodeSettings
from node.datasets.loader import load_table
from node.datasets.registry import register_dataset
from node.datasets.schema import load_schema
from node.federation.disclosure import load_disclosure_policy
from node.federation.service import build_host
from node.identity import enrol
from node.privacy.ledger import PrivacyLedger
from node.privacy.secret import load_disclosure_secret
from node.runtime import init_node, open_service
from tests.integration.test_analysis_jobs import HEART_SCHEMA, TCGA_SCHEMA, _tcga_regions
from tests.integration.test_channel import Node
from tests.integration.test_enrolment import Coordinator, running_coordinator
from tests.researchers import STUDY, add_researcher
from tests.unit.analytics.reference import HEART_CENTERS, pooled

JOB_WAIT_S = 120
MAX_NOISE = 5
MIN_CELL = 5
SEX_BY_NUM = {"row": "sex", "column": "num", "row_levels": [0, 1], "column_levels": [0, 1, 2, 3, 4]}


@dataclass
class DisclosureNetwork:
    """The coordinator, four disclosure-controlled nodes, the researcher, and what the test recomputes from."""

    coordinator: Coordinator
    nodes: list[Node]
    researcher: Federation
    researcher_id: str
    secrets: list[bytes]
    heart: list[pd.DataFrame]
    tcga: list[pd.DataFrame]

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Submit as the researcher and return the ended job (its worker joined, not polled)."""
        job = self.researcher.submit_analysis(spec)
        assert self.coordinator.app.state.runner.join(job["id"], JOB_WAIT_S), "the job did not end in time"
        return self.researcher.job(job["id"])

    def heart_job(self, analysis: str, params: dict[str, Any], **spec: Any) -> dict[str, Any]:
        """A succeeded heart job's result document."""
        job = self.run({"analysis": analysis, "params": params, "source": {"dataset": "heart"}, **spec})
        assert job["status"] == "succeeded", job["error"]
        document: dict[str, Any] = self.researcher.results(job["id"])["result"]
        return document

    def heart_result(self, analysis: str, params: dict[str, Any], **spec: Any) -> dict[str, Any]:
        """A succeeded heart job's merged result."""
        result: dict[str, Any] = self.heart_job(analysis, params, **spec)["result"]
        return result

    def ledger(self, index: int) -> PrivacyLedger:
        return PrivacyLedger(self.nodes[index].service.engine)

    def perturbed(self, index: int, rows: pd.Index, *, min_cell: int = MIN_CELL) -> int:
        """The value node ``index`` releases for a cell holding ``rows`` of its heart dataset."""
        identities = [f"dataset:heart#{int(row)}" for row in rows]
        key = cell_key(RecordKeyring(self.secrets[index]), identities)
        return PTable(max_noise=MAX_NOISE, min_cell=min_cell).release(len(identities), key)


def _disclosure_yaml(researcher: str) -> str:
    return yaml.safe_dump(
        {
            "min_cell": MIN_CELL,
            "max_noise": MAX_NOISE,
            "ledger": {
                "node_cap": {"epsilon": 100.0, "delta": 1e-3},
                "accounts": [
                    {"researcher": researcher, "study": "repeat-study", "epsilon": 5.0, "delta": 0},
                    {"researcher": researcher, "study": "tight-study", "epsilon": 1.0, "delta": 0},
                    {"researcher": researcher, "study": "secure-study", "epsilon": 5.0, "delta": 1e-5},
                ],
            },
        }
    )


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[DisclosureNetwork]:
    """A coordinator over TLS and four nodes with disclosure control and epsilon budgets from disclosure.yaml."""
    ensure_task_identity()
    data = tmp_path_factory.mktemp("disclosure-coordinator")
    heart_schema, tcga_schema = load_schema(HEART_SCHEMA), load_schema(TCGA_SCHEMA)
    regions = _tcga_regions(shared_data, tmp_path_factory.mktemp("disclosure-tcga"))[: len(HEART_CENTERS)]
    heart_files = [shared_data / "fed_heart_disease" / f"processed.{center}.data" for center in HEART_CENTERS]
    with running_coordinator(data, f"sqlite:///{data / 'coordinator.db'}") as coordinator:
        ca_file = data / "ca.pem"
        ca_file.write_bytes(coordinator.identity.ca_pem)
        who = add_researcher(
            coordinator.engine, data, data / "keys", studies=(STUDY, "repeat-study", "tight-study", "secure-study")
        )
        researcher_id = who.name  # nodes charge the researcher their certificate names
        researcher = who.federation(coordinator.url, ca_file)
        nodes: list[Node] = []
        secrets: list[bytes] = []
        try:
            for index, (heart_file, region) in enumerate(zip(heart_files, regions, strict=True)):
                node_dir = tmp_path_factory.mktemp(f"disclosure-node-{index}")
                settings = NodeSettings(data_dir=node_dir)
                init_node(settings)
                (node_dir / "disclosure.yaml").write_text(_disclosure_yaml(researcher_id), encoding="utf-8")
                service = open_service(settings)
                register_dataset(node_dir, "heart", heart_file, heart_schema)
                register_dataset(node_dir, "tcga", region, tcga_schema)
                identity = enrol(node_dir, coordinator.code(f"Guarded {index} {uuid.uuid4().hex[:6]}"), version="test")
                policy = load_disclosure_policy(node_dir)
                host = build_host(service, identity.flower_node_id, data_dir=node_dir, disclosure=policy)
                node = Node(identity, service, host)
                node.connect()
                nodes.append(node)
                secrets.append(load_disclosure_secret(node_dir))
            yield DisclosureNetwork(
                coordinator,
                nodes,
                researcher,
                researcher_id,
                secrets,
                heart=[load_table(path, heart_schema) for path in heart_files],
                tcga=[load_table(path, tcga_schema) for path in regions],
            )
        finally:
            researcher.close()
            for node in nodes:
                node.disconnect()
                node.service.engine.dispose()


def _value(cell: Any) -> int | None:
    assert isinstance(cell, dict)
    assert set(cell) == {"value", "suppressed"}
    assert (cell["value"] is None) == cell["suppressed"]
    return cell["value"]  # type: ignore[no-any-return]


# --- cell-key noise: the same records, the same noise ---------------------------------------------------


def test_five_phrasings_of_one_record_set_return_one_perturbed_value(network: DisclosureNetwork) -> None:
    """Men with asymptomatic chest pain at the two largest hospitals, asked as two differently written cohort
    counts, a histogram bin of cp, a crosstab cell of sex x cp and a histogram bin of sex, come back as one
    perturbed value: the sum over the hospitals of what each node's p-table gives that record set under
    its own secret."""
    two = {"nodes": [node.identity.node_id for node in network.nodes[:2]]}
    men = {"op": "=", "column": "sex", "value": 1}
    men_cp4 = {"all": [men, {"op": "=", "column": "cp", "value": 4}]}
    cp4_not_women = {
        "all": [{"op": ">", "column": "cp", "value": 3}, {"not": {"op": "=", "column": "sex", "value": 0}}]
    }
    cp_bins = {"column": "cp", "lower": 0.5, "upper": 4.5, "bins": 4}
    sex_by_cp = {"row": "sex", "column": "cp", "row_levels": [0, 1], "column_levels": [1, 2, 3, 4]}
    sex_bins = {"column": "sex", "lower": -0.5, "upper": 1.5, "bins": 2}
    cp_is_4 = {"op": "between", "column": "cp", "lower": 4, "upper": 4}
    answers = [
        network.heart_result("count", {}, cohort=men_cp4, **two)["rows"],
        network.heart_result("count", {}, cohort=cp4_not_women, **two)["rows"],
        network.heart_result("histogram", cp_bins, cohort=men, **two)["counts"][3],
        network.heart_result("crosstab", sex_by_cp, **two)["counts"][1][3],
        network.heart_result("histogram", sex_bins, cohort=cp_is_4, **two)["counts"][1],
    ]
    frames = network.heart[:2]
    expected = sum(
        network.perturbed(i, frame.index[(frame["sex"] == 1) & (frame["cp"] == 4)]) for i, frame in enumerate(frames)
    )
    true_count = sum(int(((frame["sex"] == 1) & (frame["cp"] == 4)).sum()) for frame in frames)
    assert [_value(answer) for answer in answers] == [expected] * 5
    assert abs(expected - true_count) <= len(frames) * MAX_NOISE


def test_every_release_names_its_method_and_noise_parameters(network: DisclosureNetwork) -> None:
    """Each node's disclosure metadata in the result says suppression + cell key, with the p-table, D and k."""
    document = network.heart_job("count", {"columns": ["chol"]})
    assert len(document["nodes"]) == len(network.nodes)
    for part in document["nodes"].values():
        disclosure = part["disclosure"]
        assert disclosure["method"] == "suppression+cell-key"
        parameters = disclosure["parameters"]
        assert parameters["min_cell"] == MIN_CELL
        assert (parameters["cell_key"]["p_table"], parameters["cell_key"]["max_noise"]) == ("sticky-grid-v1", MAX_NOISE)


# --- suppression -----------------------------------------------------------------------------------------


def _crosstab_masks(result: dict[str, Any]) -> tuple[np.ndarray, MarginMask]:
    released = np.array([[not cell["suppressed"] for cell in row] for row in result["counts"]])
    margins = MarginMask(
        rows=tuple(not cell["suppressed"] for cell in result["row_totals"]),
        columns=tuple(not cell["suppressed"] for cell in result["column_totals"]),
        total=not result["total"]["suppressed"],
    )
    return released, margins


def _sex_by_num(frames: list[pd.DataFrame]) -> np.ndarray:
    table = pooled(frames)
    counts = pd.crosstab(table["sex"], table["num"]).reindex(index=[0, 1], columns=[0, 1, 2, 3, 4], fill_value=0)
    return counts.to_numpy(dtype=np.int64)


def test_suppressed_cells_come_back_marked_and_no_released_margin_recomputes_them(network: DisclosureNetwork) -> None:
    """Sex x diagnosis at one hospital and over all four: small cells are withheld as value null, suppressed
    true (never 0), some cells are released, and the attacker's linear solver finds no withheld cell from
    the released cells and margins; a suppressed cell at one node is suppressed in the pooled table."""
    single = network.heart_job("crosstab", SEX_BY_NUM, nodes=[network.nodes[0].identity.node_id])["result"]
    pooled_result = network.heart_job("crosstab", SEX_BY_NUM)["result"]
    for result, frames in ((single, network.heart[:1]), (pooled_result, network.heart)):
        table = _sex_by_num(frames)
        released, margins = _crosstab_masks(result)
        withheld = [(i, j) for i, j in zip(*np.nonzero(~released), strict=True)]
        assert withheld, "the table must have withheld cells for this test to mean anything"
        assert all(result["counts"][i][j] == {"value": None, "suppressed": True} for i, j in withheld)
        assert not [position for position in recomputable_cells(table, released, margins) if position[0] == "cell"]
    single_released, _ = _crosstab_masks(single)
    assert single_released.any()
    assert all(cell["value"] is None or cell["value"] >= MIN_CELL for row in single["counts"] for cell in row)


def test_a_histogram_withholds_small_bins_and_its_total_reveals_none(network: DisclosureNetwork) -> None:
    """Ages in 10-year bins over four hospitals: every released bin is 0 or at least k, and with the
    released total no withheld bin can be solved for."""
    result = network.heart_job("histogram", {"column": "age", "lower": 0, "upper": 100, "bins": 10})["result"]
    cells = [*result["counts"], result["underflow"], result["overflow"], result["missing"]]
    released = np.array([not cell["suppressed"] for cell in cells])
    values = pooled(network.heart)["age"].to_numpy(dtype=float)
    truth, _ = np.histogram(values, bins=np.linspace(0, 100, 11))
    table = np.concatenate([truth, [0, 0, 0]]).astype(np.int64)
    assert (~released).any()
    assert released.any()
    assert all(_value(cell) is None or _value(cell) == 0 or (_value(cell) or 0) >= MIN_CELL for cell in cells)
    margins = MarginMask(total=not result["total"]["suppressed"])
    assert not [position for position in recomputable_cells(table, released, margins) if position[0] == "cell"]


# --- the other analyses under disclosure control ---------------------------------------------------------


def test_kaplan_meier_is_binned_carried_and_truncated(network: DisclosureNetwork) -> None:
    """Survival over four TCGA regions: times are ends of 30-day bins, every released event or censoring
    count is 0 or at least k, numbers at risk start at every patient, and the curve stops at the earliest
    point where a node would have fewer than k at risk."""
    job = network.run(
        {"analysis": "kaplan_meier", "params": {"time": "T", "event": "E"}, "source": {"dataset": "tcga"}}
    )
    assert job["status"] == "succeeded", job["error"]
    document = network.researcher.results(job["id"])["result"]
    result = document["result"]
    assert all(t % 30 == 0 for t in result["times"])
    assert all(v == 0 or v >= MIN_CELL for v in result["events"] + result["censored"])
    assert result["at_risk"][0] == result["n"] == sum(len(frame) for frame in network.tcga)
    assert result["truncated_at"] is not None
    assert max(result["times"]) <= result["truncated_at"]
    assert {part["disclosure"]["parameters"]["km_time_bin"] for part in document["nodes"].values()} == {30.0}


def test_quantiles_are_rounded_and_the_extremes_withheld(network: DisclosureNetwork) -> None:
    """Cholesterol quantiles: the minimum and maximum (one patient's value each) are withheld as suppressed,
    the quartiles are whole numbers (precision 1) within half a unit of numpy's, and n is not reported."""
    probabilities = [0.0, 0.25, 0.5, 0.75, 1.0]
    params = {"column": "chol", "probabilities": probabilities, "lower": 0, "upper": 800}
    result = network.heart_result("quantiles", params)
    exact = np.quantile(pooled(network.heart)["chol"].dropna().to_numpy(dtype=float), probabilities)
    assert result["suppressed"] == [True, False, False, False, True]
    assert result["values"][0] is None
    assert result["values"][4] is None
    assert result["n"] is None
    for ours, theirs in zip(result["values"][1:4], exact[1:4], strict=True):
        assert ours == round(ours)
        assert abs(ours - theirs) <= 0.5


def test_a_model_over_too_few_rows_at_a_node_is_refused_by_that_node(network: DisclosureNetwork) -> None:
    """thalach ~ age over patients aged 72 or more: two hospitals hold 3 such rows, enough for the model's
    own per-node rule (p + 1 = 3) but fewer than k, so they refuse with design_refused and their minimum
    (the larger of k and p + 1) rather than release sums over a handful of patients."""
    small = [int(((frame["age"] >= 72) & frame["thalach"].notna()).sum()) for frame in network.heart]
    assert any(3 <= n < MIN_CELL for n in small)
    params = {"family": "gaussian", "response": "thalach", "covariates": [{"column": "age"}]}
    job = network.run(
        {
            "analysis": "glm",
            "params": params,
            "source": {"dataset": "heart"},
            "cohort": {"op": ">=", "column": "age", "value": 72},
        }
    )
    assert job["status"] == "failed"
    assert "design_refused" in job["error"]
    assert "fewer than this node's minimum of 5 for a model of 2 parameters" in job["error"]


# --- differential privacy and the epsilon ledger -----------------------------------------------------------


def test_two_concurrent_dp_jobs_that_together_would_overspend_leave_exactly_one_refused(
    network: DisclosureNetwork,
) -> None:
    """Two different DP counts of 0.6 each against a study budget of 1.0, submitted together to one node:
    one succeeds, the other fails with privacy_budget_exceeded, and the ledger holds one charge of 0.6."""
    node = network.nodes[3]
    base = {
        "source": {"dataset": "heart"},
        "nodes": [node.identity.node_id],
        "study": "tight-study",
        "privacy": {"dp": {"mechanism": "laplace", "epsilon": 0.6}},
    }
    submitted = [
        network.researcher.submit_analysis({"analysis": "count", "params": {}, **base}),
        network.researcher.submit_analysis({"analysis": "count", "params": {"columns": ["age"]}, **base}),
    ]
    runner = network.coordinator.app.state.runner
    assert all(runner.join(job["id"], JOB_WAIT_S) for job in submitted)
    ended = [network.researcher.job(job["id"]) for job in submitted]
    assert sorted(job["status"] for job in ended) == ["failed", "succeeded"]
    (refused,) = [job for job in ended if job["status"] == "failed"]
    assert "refused: privacy_budget_exceeded" in refused["error"]
    ledger = network.ledger(3)
    (entry,) = ledger.entries(researcher=network.researcher_id, study="tight-study")
    assert (entry.unit, entry.epsilon, entry.delta, entry.state) == ("record", 0.6, 0.0, "released")
    usage = ledger.usage(network.researcher_id, "tight-study")
    assert usage is not None
    assert usage.spent.epsilon == 0.6


def test_a_repeated_identical_dp_job_returns_the_identical_answer_and_is_charged_once(
    network: DisclosureNetwork,
) -> None:
    """The same DP histogram asked twice: identical noisy bins, not the exact ones, and every node's ledger
    shows one entry and epsilon 1.0 spent on the study."""
    spec = {
        "study": "repeat-study",
        "privacy": {"dp": {"mechanism": "laplace", "epsilon": 1.0}},
    }
    params = {"column": "age", "lower": 0, "upper": 100, "bins": 10}
    first = network.heart_job("histogram", params, **spec)
    second = network.heart_job("histogram", params, **spec)
    assert first["result"] == second["result"]
    exact, _ = np.histogram(pooled(network.heart)["age"].to_numpy(dtype=float), bins=np.linspace(0, 100, 11))
    assert first["result"]["counts"] != exact.tolist()
    assert {part["disclosure"]["method"] for part in first["nodes"].values()} == {"differential-privacy"}
    for index in range(len(network.nodes)):
        ledger = network.ledger(index)
        (entry,) = ledger.entries(researcher=network.researcher_id, study="repeat-study")
        assert entry.epsilon == 1.0
        usage = ledger.usage(network.researcher_id, "repeat-study")
        assert usage is not None
        assert usage.spent.epsilon == 1.0


# --- secure aggregation with disclosure control ---------------------------------------------------------


def _secure_vector(network: DisclosureNetwork, index: int) -> list[int]:
    """Node ``index``'s perturbed sex x num vector for secure aggregation (layout: common.analytics.secure)."""
    frame = network.heart[index]
    complete = frame["sex"].notna() & frame["num"].notna()
    cells = [
        frame.index[complete & (frame["sex"] == sex) & (frame["num"] == num)]
        for sex in SEX_BY_NUM["row_levels"]
        for num in SEX_BY_NUM["column_levels"]
    ]
    rows = [frame.index[complete & (frame["sex"] == sex)] for sex in SEX_BY_NUM["row_levels"]]
    columns = [frame.index[complete & (frame["num"] == num)] for num in SEX_BY_NUM["column_levels"]]
    entries = [*cells, frame.index[~complete], *rows, *columns, frame.index[complete]]
    return [network.perturbed(index, entry, min_cell=1) for entry in entries]


def test_secure_aggregation_adds_perturbed_vectors_exactly_and_suppresses_the_totals(
    network: DisclosureNetwork,
) -> None:
    """Sex x diagnosis under secure aggregation: every masked vector the coordinator stored differs from the
    node's perturbed vector, the masked vectors add up mod 2**k to exactly the sum of the perturbed ones,
    the released cells are those sums, and small totals are suppressed with no cell recomputable."""
    job = network.run(
        {"analysis": "crosstab", "params": SEX_BY_NUM, "source": {"dataset": "heart"}, "secure_aggregation": True}
    )
    assert job["status"] == "succeeded", job["error"]
    document = network.researcher.results(job["id"])["result"]
    bits = document["secure_aggregation"]["modulus_bits"]
    plain = [_secure_vector(network, index) for index in range(len(network.nodes))]
    expected = np.sum(np.asarray(plain, dtype=object), axis=0)
    total = np.zeros(len(expected), dtype=object)
    for node, vector in zip(network.nodes, plain, strict=True):
        message_id = deterministic_message_id(job["id"], 2, 1, MessageType.QUERY, node.identity.flower_node_id)
        (reply,) = messages.fetch_replies(network.coordinator.engine, message_ids=[message_id])
        record = message_from_bytes(reply.payload).content.config_records[RECORD]
        masked = from_wire(str(record[PARTIAL_KEY]))["masked"]
        assert masked != vector
        total = total + np.asarray(masked, dtype=object)
    assert [int(v) % (1 << bits) for v in total] == [int(v) for v in expected]
    result = document["result"]
    released, margins = _crosstab_masks(result)
    flat = [cell for row in result["counts"] for cell in row]
    assert all(cell["value"] == expected[k] for k, cell in enumerate(flat) if not cell["suppressed"])
    assert released.any()
    assert (~released).any()
    assert not [p for p in recomputable_cells(_sex_by_num(network.heart), released, margins) if p[0] == "cell"]
    assert {part["disclosure"]["secure_aggregation"] for part in document["nodes"].values()} == {True}


def test_a_dp_count_under_secure_aggregation_is_charged_and_released_without_suppression(
    network: DisclosureNetwork,
) -> None:
    """A Gaussian-DP count of men under secure aggregation: every node charges its ledger once, declares
    no minimum cell (DP protects small counts), and the total is a plain noisy count near the truth."""
    job = network.run(
        {
            "analysis": "count",
            "params": {"columns": ["chol"]},
            "source": {"dataset": "heart"},
            "cohort": {"op": "=", "column": "sex", "value": 1},
            "secure_aggregation": True,
            "study": "secure-study",
            "privacy": {"dp": {"mechanism": "gaussian", "epsilon": 2.0, "delta": 1e-6}},
        }
    )
    assert job["status"] == "succeeded", job["error"]
    document = network.researcher.results(job["id"])["result"]
    assert document["secure_aggregation"]["suppression_min_cell"] == 1
    assert {part["disclosure"]["method"] for part in document["nodes"].values()} == {"differential-privacy"}
    rows = document["result"]["rows"]
    men = sum(int((frame["sex"] == 1).sum()) for frame in network.heart)
    assert isinstance(rows, int)
    assert abs(rows - men) < 100  # four nodes' noise, sigma about 5 each: 10 standard deviations
    for index in range(len(network.nodes)):
        (entry,) = network.ledger(index).entries(researcher=network.researcher_id, study="secure-study")
        assert (entry.epsilon, entry.delta) == (2.0, 1e-6)


def test_a_node_dropping_out_of_a_secure_sum_fails_the_job_with_a_clear_reason(network: DisclosureNetwork) -> None:
    """A node whose channel goes down after sending its round key never sends its masked vector: the job
    fails with secure_aggregation_failed naming the node, and no result is stored."""
    app = network.coordinator.app
    spec = {
        "kind": "analysis",
        "analysis": "count",
        "params": {},
        "source": {"dataset": "heart"},
        "secure_aggregation": True,
        "round_timeout_s": 2,
    }
    dropping = network.nodes[2]
    job_id = jobs.create_job(
        network.coordinator.engine,
        kind="analysis",
        spec=parse_spec(spec).model_dump(mode="json"),
        submitter=network.researcher_id,
        seed=1,
        node_ids=[node.identity.node_id for node in network.nodes],
    ).id

    def drop_after_the_keys(finished: str, server_round: int) -> None:
        if finished == job_id and server_round == 1:
            dropping.disconnect()

    runner = JobRunner(app.state.engine, app.state.notifier, offline_after_s=30, after_round=drop_after_the_keys)
    try:
        runner.submit(job_id)
        assert runner.join(job_id, JOB_WAIT_S)
    finally:
        dropping.connect()
    job = network.researcher.job(job_id)
    assert job["status"] == "failed"
    assert job["error"].startswith(f"step 2: no masked vector from {dropping.identity.node_id} in time")
    assert "cannot be completed without every participant" in job["error"]
    assert network.researcher.results(job_id)["result"] is None
