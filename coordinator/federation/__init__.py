"""The coordinator's side of the federation: the Flower Grid over a transport, and the built-in jobs."""
