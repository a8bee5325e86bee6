"""The record locator's protocol: what nodes and the coordinator agree on besides the token recipe.

- :mod:`~common.locator.index_wire` — the patient index's wire models (publish, withdraw, lookup);
- :mod:`~common.locator.certificates` — node key certificates signed by the network-admin key;
- :mod:`~common.locator.envelopes` — signed, sealed node-to-node messages relayed by the coordinator;
- :mod:`~common.locator.union_count` — de-duplicated cross-node counts (job-salted bitmaps, secure sum).

Pure: pydantic models and :mod:`common.crypto` recipes, no I/O.
"""
