"""The node's side of the patient index: its linkage key, publishing tokens, and patients' consent.

- :mod:`~node.linkage.keyfile` — the network linkage key in the data directory (init, import, rotate);
- :mod:`~node.linkage.consent` — opt-outs read from FHIR ``Consent`` resources (sharing, research);
- :mod:`~node.linkage.outbox` — the write-path hook that queues changed patients for publishing;
- :mod:`~node.linkage.records` — what the node published per patient (its opaque reference);
- :mod:`~node.linkage.publisher` — the background publisher that drains the queue to the coordinator.

This package's ``__init__`` imports nothing: the FHIR write path imports :mod:`node.linkage.outbox`.
"""
