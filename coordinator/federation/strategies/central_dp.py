"""Central (client-level) differential privacy: Flower's server-side fixed clipping, uniformly weighted.

:class:`CentralDp` wraps Flower's ``DifferentialPrivacyServerSideFixedClipping``: the coordinator clips
each node's update to L2 norm ``clipping_norm``, averages them *uniformly* (a sample-weighted mean would
let one large node move the mean by more than ``clipping_norm / m``), and adds Gaussian noise of standard
deviation ``noise_multiplier * clipping_norm / m`` for the ``m`` updates averaged. FedAvg and FedProx
only: an adaptive server step (FedOpt) or a corrected one (Scaffold) is not the Gaussian mechanism the
accounting assumes. Each round adds ``central_dp_epsilon`` / ``central_dp_delta`` (client level, all
rounds so far, no amplification by sampling: the driver's sample is drawn from the job's seed, which the
researcher may know) to the round's train metrics. Never charged to a node's ledger: the nodes send exact
updates and the coordinator is trusted with them.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, Strategy
from pydantic import BaseModel, ConfigDict, Field

from common.privacy.rdp import dp_sgd_epsilon

__all__ = ["METRICS", "WEIGHT", "CentralDp", "CentralDpSettings"]

METRICS = "metrics"
"""The MetricRecord of a node's reply."""
WEIGHT = "num-examples"
"""The weight of a node's update in its metrics (Flower's ``weighted_by_key``)."""


class CentralDpSettings(BaseModel):
    """Central (client-level) DP of a learning job: Flower's server-side fixed clipping (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    noise_multiplier: float = Field(gt=0, le=100)
    clipping_norm: float = Field(gt=0, le=1e6)
    num_sampled_clients: int = Field(ge=1, le=10_000, description="Nodes expected per round (Flower's m).")
    delta: float = Field(default=1e-5, gt=0, lt=1, description="The delta the client-level epsilon is reported at.")

    def epsilon(self, releases: int) -> float:
        """Client-level epsilon at ``delta`` after ``releases`` noisy aggregates (RDP, no amplification)."""
        return dp_sgd_epsilon(q=1.0, sigma=self.noise_multiplier, steps=releases, delta=self.delta)


class CentralDp(DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side fixed clipping with uniform weights and client-level epsilon (see the module)."""

    def __init__(self, strategy: Strategy, settings: CentralDpSettings) -> None:
        super().__init__(strategy, settings.noise_multiplier, settings.clipping_norm, settings.num_sampled_clients)
        self.settings = settings
        self.releases = 0

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Clip, average uniformly, add noise for the ``m`` updates received; report the epsilon so far."""
        replies = list(replies)
        for reply in replies:  # uniform weights: one node's influence on the mean is at most C / m
            record = reply.content.metric_records.get(METRICS)
            if record is not None:
                record[WEIGHT] = 1
        self.num_sampled_clients = max(1, len(replies))
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None:
            return arrays, metrics
        self.releases += 1
        metrics = metrics if metrics is not None else MetricRecord()
        metrics["central_dp_epsilon"] = self.settings.epsilon(self.releases)
        metrics["central_dp_delta"] = self.settings.delta
        return arrays, metrics
