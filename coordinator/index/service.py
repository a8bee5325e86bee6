"""Publish, withdraw and look up: the index's rules between the routes and the store.

- Every token is re-keyed with the coordinator's secret before it is stored or looked up, and checked
  against the linkage recipe: an unknown variant is refused (a node on another recipe version), and a
  variant's tier is the recipe's, whatever a node claims.
- A lookup groups the matched tokens by record and decides each with
  :func:`common.linkage.matching.link_results` (MATCH, POSSIBLE or nothing); records of the asking
  node are never returned. A record in the same person cluster as a MATCH, that the probe did not
  reach by itself (another hospital's record with an older address, say), is returned as POSSIBLE:
  the holding node re-checks demographics before it releases anything.
- The answer carries ``(node, ref, decision)`` only; the evidence bits, tokens and clusters stay here.
- A lookup is one statement and, on PostgreSQL, one round trip: it runs on the store's lookup engine
  (:func:`coordinator.store.index.lookup_reader`: autocommit, no ping on checkout), which
  :meth:`IndexService.close` disposes of.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sqlalchemy.engine import Engine

from common.errors import ErrorCode, InputError
from common.linkage.matching import Decision as LinkDecision
from common.linkage.matching import link_results
from common.linkage.rekey import RekeyKey
from common.linkage.tokens import VARIANTS, VARIANTS_BY_NAME, Tier
from common.locator.index_wire import (
    Decision,
    LookupHit,
    PublishRequest,
    PublishResponse,
    WireToken,
    WithdrawRequest,
    WithdrawResponse,
)
from coordinator.store import index as store

__all__ = ["IndexService"]


class IndexService:
    """The patient index over one engine and the coordinator's re-keying key."""

    def __init__(self, engine: Engine, rekey_key: RekeyKey) -> None:
        self._engine = engine
        self._reader = store.lookup_reader(engine)
        self._rekey = rekey_key
        self._variants: dict[str, store.VariantRow] | None = None
        self._by_id: dict[int, store.VariantRow] = {}
        self._lock = threading.Lock()

    def _variant_rows(self) -> dict[str, store.VariantRow]:
        with self._lock:
            if self._variants is None:
                recipe = {variant.name: variant.tier is Tier.STRONG for variant in VARIANTS}
                self._variants = store.ensure_variants(self._engine, recipe)
                self._by_id = {row.id: row for row in self._variants.values()}
            return self._variants

    def _rekeyed(self, token: WireToken, rows: dict[str, store.VariantRow]) -> tuple[bytes, store.VariantRow]:
        row = rows.get(token.variant)
        if row is None or token.variant not in VARIANTS_BY_NAME:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="unknown linkage variant", hints=["tokens: variant"])
        return self._rekey.rekey_bytes(token.variant, token.value), row

    def publish(self, node_id: str, request: PublishRequest) -> PublishResponse:
        """Store (or replace) each record's tokens."""
        rows = self._variant_rows()
        records = []
        for record in request.records:
            tokens = []
            for token in record.tokens:
                value, row = self._rekeyed(token, rows)
                tokens.append(store.IndexedToken(value=value, variant_id=row.id, strong=row.strong))
            records.append(store.RecordTokens(ref=record.ref, tokens=tokens))
        outcome = store.publish_records(self._engine, node_id=node_id, key_id=request.key_id, records=records)
        return PublishResponse(stored=outcome.stored, suppressed=outcome.suppressed)

    def withdraw(self, node_id: str, request: WithdrawRequest) -> WithdrawResponse:
        """Remove the node's references (with ``person``: every record of the person, and suppress it)."""
        removed = store.withdraw_records(self._engine, node_id=node_id, refs=request.refs, person=request.person)
        return WithdrawResponse(withdrawn=removed)

    def lookup(self, node_id: str, tokens: Sequence[WireToken]) -> list[LookupHit]:
        """The other nodes' records the probe tokens point at, MATCH first."""
        rows = self._variant_rows()
        values = [self._rekeyed(token, rows)[0] for token in tokens]
        hits, mates = store.lookup_tokens(self._reader, tokens=values, exclude_node=node_id)
        refs = {hit.record_id: (hit.node_id, hit.record_ref, hit.cluster_id) for hit in hits}
        pairs = [(hit.record_id, self._by_id[hit.variant_id].name) for hit in hits if hit.variant_id in self._by_id]
        decided = link_results(pairs)
        answer = [
            LookupHit(node=refs[result.ref][0], ref=refs[result.ref][1], decision=Decision(result.decision.value))
            for result in decided
        ]
        matched_clusters = {refs[r.ref][2] for r in decided if r.decision is LinkDecision.MATCH}
        shown = {result.ref for result in decided}
        possible = {
            mate.record_id: (mate.node_id, mate.record_ref)
            for mate in [*mates, *(hit for hit in hits if hit.record_id not in shown)]
            if mate.cluster_id in matched_clusters and mate.record_id not in shown
        }
        answer.extend(LookupHit(node=node, ref=ref, decision=Decision.POSSIBLE) for node, ref in possible.values())
        return answer

    def close(self) -> None:
        """Close the lookups' own connections (PostgreSQL; the store's engine is the caller's)."""
        if self._reader is not self._engine:
            self._reader.dispose()

    def audit(self, node_id: str, *, action: str, items: int, hits: int | None, status: int) -> None:
        """One audit row for one call."""
        store.record_audit(self._engine, node_id=node_id, action=action, items=items, hits=hits, status=status)
