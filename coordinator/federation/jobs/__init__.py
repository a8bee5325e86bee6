"""Coordinator-side drivers of the built-in federated jobs (one module per job)."""
