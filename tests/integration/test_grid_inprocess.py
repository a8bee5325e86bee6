"""The federation path in one process: Flower strategies on MedfedGrid, an in-memory transport, three node hosts.

No network: the transport hands serialised messages to each node's ClientAppHost on worker threads, so
everything but the channel (serde, ids, validation, refusals, concurrency, determinism) is the real thing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import Result
from numpy.typing import NDArray

from common.errors import ErrorCode, InputError
from common.flower import (
    SUPERLINK_NODE_ID,
    ReplyErrorCode,
    assign_message_id,
    flower_node_id,
    flower_run_id,
    make_reply,
    message_from_bytes,
    message_to_bytes,
    route_flower_logging,
    stamp_run_id,
)
from coordinator.federation.grid import DeadlineExceededError, IncompleteResultError, MedfedGrid
from coordinator.federation.jobs.count import run_count
from coordinator.federation.jobs.fedavg import run_fedavg, start_fedavg
from coordinator.federation.memory import Endpoint, InMemoryTransport
from node.federation.apps import COUNT, FEDAVG_MLP, builtin_apps
from node.federation.apps.data import make_tabular
from node.federation.host import ClientAppHost, InstalledApp

NAMES = ("st-ann", "st-bart", "st-cecilia")
PATIENTS = {"st-ann": 120, "st-bart": 340, "st-cecilia": 560}
ROWS = 2000
SEED = 11
ROUNDS = 3
COUNT_TYPES = frozenset({"query"})
FEDAVG_TYPES = frozenset({"train", "evaluate"})


@dataclass
class Federation:
    """Three node hosts, the jobs each node accepted, and a transport that delivers to them."""

    hosts: dict[int, ClientAppHost]
    count_calls: dict[int, int]
    grants: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    transport: InMemoryTransport | None = None

    def job(self, app: str, types: frozenset[str]) -> str:
        """A new job id that every node has accepted for ``app`` and ``types``."""
        job_id = f"job-{uuid.uuid4()}"
        self.grants[job_id] = (app, types)
        return job_id

    def endpoint(self, node_id: int) -> Endpoint:
        """The node's ClientAppHost.handle bound to the jobs it accepted."""
        host = self.hosts[node_id]

        def deliver(payload: bytes, *, job_id: str) -> bytes:
            app, types = self.grants[job_id]
            return host.handle(payload, job_id=job_id, app=app, allowed_message_types=types)

        return deliver

    def endpoints(self) -> dict[int, Endpoint]:
        return {node_id: self.endpoint(node_id) for node_id in self.hosts}

    @property
    def grid_transport(self) -> InMemoryTransport:
        assert self.transport is not None
        return self.transport


def _node_apps(index: int, name: str, count_calls: dict[int, int], node_id: int) -> dict[str, InstalledApp]:
    def count_patients() -> int:
        count_calls[node_id] += 1
        return PATIENTS[name]

    def load_features(seed: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return make_tabular(ROWS, seed=seed * 100 + index)

    return builtin_apps(count_patients=count_patients, load_features=load_features)


@pytest.fixture(scope="module")
def federation() -> Iterator[Federation]:
    """Three warm node hosts behind one InMemoryTransport, for the whole module."""
    hosts: dict[int, ClientAppHost] = {}
    count_calls: dict[int, int] = {}
    for index, name in enumerate(NAMES):
        node_id = flower_node_id(name)
        count_calls[node_id] = 0
        hosts[node_id] = ClientAppHost(node_id=node_id, apps=_node_apps(index, name, count_calls, node_id))
        hosts[node_id].warm_up()
    fed = Federation(hosts=hosts, count_calls=count_calls)
    with InMemoryTransport(fed.endpoints()) as transport:
        fed.transport = transport
        yield fed


@pytest.fixture(scope="module")
def reference_fedavg(federation: Federation) -> Result:
    """FedAvg, 3 nodes x 2,000 rows, 3 rounds, 1 local epoch, seed 11, run alone."""
    grid = MedfedGrid(federation.grid_transport, job_id=federation.job(FEDAVG_MLP, FEDAVG_TYPES))
    return start_fedavg(grid, rounds=ROUNDS, seed=SEED, local_epochs=1, timeout=60)


def _same_arrays(left: ArrayRecord, right: ArrayRecord) -> bool:
    return list(left) == list(right) and all(
        np.array_equal(left[key].numpy(), right[key].numpy()) and left[key].numpy().dtype == right[key].numpy().dtype
        for key in left
    )


def _per_round(metrics: dict[int, MetricRecord], key: str) -> list[float]:
    values = [metrics[server_round][key] for server_round in range(1, ROUNDS + 1)]
    assert all(isinstance(value, float) for value in values)
    return [float(value) for value in values if isinstance(value, float)]


def _queries(node_ids: Sequence[int], message_type: str = "query") -> list[Message]:
    return [Message(RecordDict({"config": ConfigRecord()}), node_id, message_type) for node_id in node_ids]


class RecordingTransport(InMemoryTransport):
    """An InMemoryTransport that records what the Grid pushed and can hold a push until an event is set."""

    def __init__(self, endpoints: dict[int, Endpoint]) -> None:
        super().__init__(endpoints)
        self.pushed: list[tuple[str, int | None, int, str, bytes]] = []
        self.hold: Callable[[str, int | None], None] = lambda job_id, round: None

    def push(
        self,
        *,
        job_id: str,
        round: int | None,
        node_id: int,
        message_id: str,
        payload: bytes,
        deadline: float | None,
    ) -> None:
        self.pushed.append((job_id, round, node_id, message_id, payload))
        self.hold(job_id, round)
        super().push(
            job_id=job_id, round=round, node_id=node_id, message_id=message_id, payload=payload, deadline=deadline
        )


# --- analytics -----------------------------------------------------------------------------------------


def test_count_job_sums_the_counts_of_all_three_nodes(federation: Federation) -> None:
    """run_count sends one query per node and returns 120 + 340 + 560."""
    grid = MedfedGrid(federation.grid_transport, job_id=federation.job(COUNT, COUNT_TYPES))

    assert run_count(grid, timeout=10) == 1020


def test_replies_come_back_in_node_id_order_whatever_order_they_arrive_in(federation: Federation) -> None:
    """Nodes answer highest id first; send_and_receive and pull_messages still return ascending node ids."""
    order = sorted(federation.hosts)
    arrived: list[int] = []
    turn = {node_id: threading.Event() for node_id in order}
    lock = threading.Lock()

    def in_reverse(node_id: int) -> Endpoint:
        inner = federation.endpoint(node_id)

        def deliver(payload: bytes, *, job_id: str) -> bytes:
            assert turn[node_id].wait(10)
            reply = inner(payload, job_id=job_id)
            with lock:
                arrived.append(node_id)
            position = order.index(node_id)
            if position > 0:
                turn[order[position - 1]].set()
            return reply

        return deliver

    with InMemoryTransport({node_id: in_reverse(node_id) for node_id in order}) as transport:
        grid = MedfedGrid(transport, job_id=federation.job(COUNT, COUNT_TYPES))
        turn[order[-1]].set()
        replies = grid.send_and_receive(_queries(order), timeout=10)
        assert arrived == order[::-1]
        assert [reply.metadata.src_node_id for reply in replies] == order

        arrived.clear()
        for event in turn.values():
            event.clear()
        message_ids = grid.push_messages(_queries(order))
        turn[order[-1]].set()
        for message_id in message_ids:  # each reply stored (waiting, not taken) before one pull takes all
            transport.wait(job_id=grid.job_id, message_ids=[message_id], timeout=10)
        pulled = grid.pull_messages(message_ids)
        assert [reply.metadata.src_node_id for reply in pulled] == order


def test_send_and_receive_returns_what_arrived_when_the_timeout_passes(federation: Federation) -> None:
    """With one node stuck, send_and_receive(timeout=0.3) returns the two replies that came; run_count refuses."""
    stuck_node = sorted(federation.hosts)[1]
    release = threading.Event()

    def endpoint(node_id: int) -> Endpoint:
        inner = federation.endpoint(node_id)

        def deliver(payload: bytes, *, job_id: str) -> bytes:
            if node_id == stuck_node:
                release.wait(10)
            return inner(payload, job_id=job_id)

        return deliver

    with InMemoryTransport({node_id: endpoint(node_id) for node_id in federation.hosts}) as transport:
        try:
            grid = MedfedGrid(transport, job_id=federation.job(COUNT, COUNT_TYPES))
            started = time.monotonic()
            replies = grid.send_and_receive(_queries(grid.get_node_ids()), timeout=0.3)
            waited = time.monotonic() - started

            assert sorted(reply.metadata.src_node_id for reply in replies) == sorted(
                set(federation.hosts) - {stuck_node}
            )
            assert 0.3 <= waited < 5

            impatient = MedfedGrid(transport, job_id=federation.job(COUNT, COUNT_TYPES), max_timeout=0.2)
            assert len(impatient.send_and_receive(_queries([stuck_node]), timeout=None)) == 0
            with pytest.raises(IncompleteResultError):
                run_count(impatient, timeout=0.2)
        finally:
            release.set()


def test_a_message_type_outside_the_jobs_allowed_set_is_refused_at_the_node(federation: Federation) -> None:
    """A train message for a query-only count job gets an error reply (MESSAGE_TYPE_REFUSED); the app never runs."""
    grid = MedfedGrid(federation.grid_transport, job_id=federation.job(COUNT, COUNT_TYPES))
    calls_before = dict(federation.count_calls)

    replies = grid.send_and_receive(_queries(grid.get_node_ids(), message_type="train"), timeout=10)

    assert len(replies) == 3
    assert all(reply.has_error() for reply in replies)
    assert {reply.error.code for reply in replies} == {ReplyErrorCode.MESSAGE_TYPE_REFUSED}
    assert federation.count_calls == calls_before


def test_the_host_refuses_other_jobs_other_nodes_unknown_apps_and_non_messages(federation: Federation) -> None:
    """A node answers WRONG_RECIPIENT for another job's or node's message, UNKNOWN_APP for an app it lacks."""
    node_id, other_node = sorted(federation.hosts)[:2]
    host = federation.hosts[node_id]
    job_a, job_b = "job-a", "job-b"

    def encoded(dst: int, job_id: str) -> bytes:
        message = _queries([dst])[0]
        assign_message_id(message)
        stamp_run_id(message, flower_run_id(job_id))
        return message_to_bytes(message)

    def code(payload: bytes, job_id: str, app: str = COUNT) -> int | None:
        reply = message_from_bytes(host.handle(payload, job_id=job_id, app=app, allowed_message_types=COUNT_TYPES))
        return reply.error.code if reply.has_error() else None

    assert code(encoded(node_id, job_a), job_a) is None
    assert code(encoded(node_id, job_a), job_b) == ReplyErrorCode.WRONG_RECIPIENT
    assert code(encoded(other_node, job_a), job_a) == ReplyErrorCode.WRONG_RECIPIENT
    assert code(encoded(node_id, job_a), job_a, app="sql_console") == ReplyErrorCode.UNKNOWN_APP
    with pytest.raises(InputError) as caught:
        host.handle(b"not a message", job_id=job_a, app=COUNT, allowed_message_types=COUNT_TYPES)
    assert caught.value.code is ErrorCode.INVALID_REQUEST


def test_a_jobs_context_state_persists_across_its_messages_and_is_its_own() -> None:
    """One Context per (job, node): its state survives between a job's messages and is not shared between jobs."""
    app = ClientApp()

    @app.query()
    def calls(message: Message, context: Context) -> Message:
        seen = context.state.metric_records.get("seen", MetricRecord({"n": 0}))
        count = seen["n"]
        assert isinstance(count, int)
        context.state["seen"] = MetricRecord({"n": count + 1})
        return make_reply(message, RecordDict({"metrics": MetricRecord({"n": count + 1})}))

    node_id = flower_node_id("st-dora")
    host = ClientAppHost(node_id=node_id, apps={"calls": InstalledApp(app)})

    def ask(job_id: str) -> object:
        message = _queries([node_id])[0]
        assign_message_id(message)
        stamp_run_id(message, flower_run_id(job_id))
        payload = host.handle(message_to_bytes(message), job_id=job_id, app="calls", allowed_message_types=COUNT_TYPES)
        return message_from_bytes(payload).content.metric_records["metrics"]["n"]

    assert [ask("job-x"), ask("job-x"), ask("job-y"), ask("job-x")] == [1, 2, 1, 3]
    host.close_job("job-x")
    assert ask("job-x") == 1


# --- the Grid's own guarantees -------------------------------------------------------------------------


def test_the_grid_stamps_the_jobs_run_id_and_gives_the_transport_each_round(federation: Federation) -> None:
    """Every pushed message carries the job's run id and its id; FedAvg rounds 1..2 reach the transport."""
    with RecordingTransport(federation.endpoints()) as transport:
        job_id = federation.job(FEDAVG_MLP, FEDAVG_TYPES)
        run_fedavg(MedfedGrid(transport, job_id=job_id), rounds=2, seed=SEED, timeout=30)
        count_job = federation.job(COUNT, COUNT_TYPES)
        run_count(MedfedGrid(transport, job_id=count_job), timeout=10)

    fedavg_pushes = [push for push in transport.pushed if push[0] == job_id]
    assert [push[1] for push in fedavg_pushes] == [1] * 6 + [2] * 6  # train + evaluate to 3 nodes per round
    assert {push[1] for push in transport.pushed if push[0] == count_job} == {None}
    for pushed_job, _, node_id, message_id, payload in transport.pushed:
        message = message_from_bytes(payload)
        assert message.metadata.run_id == flower_run_id(pushed_job)
        assert message.metadata.message_id == message_id
        assert (message.metadata.src_node_id, message.metadata.dst_node_id) == (SUPERLINK_NODE_ID, node_id)


def test_the_grid_keeps_flowers_reserved_node_ids_out() -> None:
    """Node ids 0 and 1 from a transport are never reported, and a message to one is refused."""

    class Reserved(InMemoryTransport):
        def node_ids(self) -> list[int]:
            return [0, SUPERLINK_NODE_ID, *super().node_ids()]

    node_id = flower_node_id("st-eve")
    with Reserved({node_id: lambda payload, *, job_id: payload}) as transport:
        grid = MedfedGrid(transport, job_id="job-r")

        assert grid.get_node_ids() == [node_id]
        with pytest.raises(ValueError, match="reserved"):
            grid.push_messages(_queries([SUPERLINK_NODE_ID]))


def test_past_its_deadline_a_job_stops_instead_of_waiting_for_nodes_forever(federation: Federation) -> None:
    """FedAvg asking for 5 nodes of 3 (Flower waits forever) ends with DeadlineExceededError at the deadline."""
    grid = MedfedGrid(
        federation.grid_transport, job_id=federation.job(FEDAVG_MLP, FEDAVG_TYPES), deadline=time.time() + 0.2
    )

    with pytest.raises(DeadlineExceededError):
        run_fedavg(grid, rounds=1, seed=SEED, min_nodes=5, timeout=10)


# --- learning ------------------------------------------------------------------------------------------


def test_fedavg_runs_unchanged_on_the_medfed_grid_and_its_loss_decreases(reference_fedavg: Result) -> None:
    """Flower's FedAvg, 3 nodes x 3 rounds x 1 local epoch: federated evaluation loss and training loss fall."""
    eval_loss = _per_round(reference_fedavg.evaluate_metrics_clientapp, "eval_loss")
    train_loss = _per_round(reference_fedavg.train_metrics_clientapp, "train_loss")

    assert eval_loss == sorted(eval_loss, reverse=True)
    assert eval_loss[-1] < eval_loss[0]
    assert train_loss[-1] < train_loss[0]
    assert list(reference_fedavg.arrays) == [
        "net.0.weight",
        "net.0.bias",
        "net.2.weight",
        "net.2.bias",
        "net.4.weight",
        "net.4.bias",
    ]


def test_fedavg_with_the_same_seed_gives_bit_identical_arrays(federation: Federation, reference_fedavg: Result) -> None:
    """A second run with seed 11 reproduces the first run's final arrays bit for bit; seed 12 does not."""
    again = run_fedavg(
        MedfedGrid(federation.grid_transport, job_id=federation.job(FEDAVG_MLP, FEDAVG_TYPES)),
        rounds=ROUNDS,
        seed=SEED,
        timeout=60,
    )
    other = run_fedavg(
        MedfedGrid(federation.grid_transport, job_id=federation.job(FEDAVG_MLP, FEDAVG_TYPES)),
        rounds=1,
        seed=SEED + 1,
        timeout=60,
    )

    assert _same_arrays(again, reference_fedavg.arrays)
    assert not _same_arrays(other, reference_fedavg.arrays)


def test_a_count_job_runs_while_a_fedavg_job_is_mid_flight_and_both_are_right(
    federation: Federation, reference_fedavg: Result
) -> None:
    """FedAvg is held at round 2 until a count job, started in another thread, has finished: both results are right.

    This is the TaskIdentity design at work: two strategies in two threads of one process, one sentinel
    identity, each Grid stamping its own job's run id; the count is not queued behind the FedAvg job.
    """
    count_done = threading.Event()
    fedavg_reached_round_2 = threading.Event()
    fedavg_job = federation.job(FEDAVG_MLP, FEDAVG_TYPES)

    def hold_round_2(job_id: str, round: int | None) -> None:
        if job_id == fedavg_job and round == 2:
            fedavg_reached_round_2.set()
            assert count_done.wait(20), "the count job did not finish while FedAvg waited"

    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def run(name: str, job: Callable[[], object]) -> None:
        try:
            results[name] = job()
        except BaseException as exc:
            errors.append(exc)
        finally:
            if name == "count":
                count_done.set()

    with RecordingTransport(federation.endpoints()) as transport:
        transport.hold = hold_round_2
        fedavg_grid = MedfedGrid(transport, job_id=fedavg_job)
        count_grid = MedfedGrid(transport, job_id=federation.job(COUNT, COUNT_TYPES))
        fedavg_thread = threading.Thread(
            target=run, args=("fedavg", lambda: run_fedavg(fedavg_grid, rounds=ROUNDS, seed=SEED, timeout=60))
        )
        count_thread = threading.Thread(target=run, args=("count", lambda: run_count(count_grid, timeout=10)))
        fedavg_thread.start()
        assert fedavg_reached_round_2.wait(20)
        count_thread.start()
        count_thread.join(30)
        fedavg_thread.join(60)

    assert not errors, errors
    assert results["count"] == 1020
    fedavg_arrays = results["fedavg"]
    assert isinstance(fedavg_arrays, ArrayRecord)
    assert _same_arrays(fedavg_arrays, reference_fedavg.arrays)


# --- privacy of the logs -------------------------------------------------------------------------------


def test_no_node_or_job_identifier_reaches_the_logs(federation: Federation, caplog: pytest.LogCaptureFixture) -> None:
    """A count and a FedAvg round, with Flower's logger routed at INFO, log no node id, run id or job id."""
    route_flower_logging(logging.INFO)
    try:
        count_job = federation.job(COUNT, COUNT_TYPES)
        fedavg_job = federation.job(FEDAVG_MLP, FEDAVG_TYPES)
        with caplog.at_level(logging.DEBUG):
            run_count(MedfedGrid(federation.grid_transport, job_id=count_job), timeout=10)
            run_fedavg(MedfedGrid(federation.grid_transport, job_id=fedavg_job), rounds=1, seed=SEED, timeout=30)
    finally:
        route_flower_logging()

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "handled a query message" in text
    assert "Strategy execution finished" in text
    identifiers = [*map(str, federation.hosts), count_job, fedavg_job, str(flower_run_id(count_job))]
    assert not [identifier for identifier in identifiers if identifier in text]
