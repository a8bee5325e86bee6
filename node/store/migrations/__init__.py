"""Alembic migrations of the node's database (run programmatically by :mod:`node.store.migrate`)."""
