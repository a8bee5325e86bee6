"""Alembic migrations of the coordinator's database (run programmatically by :mod:`coordinator.store.migrate`)."""
