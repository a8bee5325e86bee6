"""The coordinator's pseudonymous patient index and the record locator's relay.

- :mod:`~coordinator.index.secret` — the coordinator's re-keying secret (created at init, never sent);
- :mod:`~coordinator.index.limits` — a token bucket per node for lookups;
- :mod:`~coordinator.index.service` — publish, withdraw and lookup over the store, with re-keying,
  the match decision and the audit;
- :mod:`~coordinator.index.certificates` — node key certificates under the network-admin key.
"""
