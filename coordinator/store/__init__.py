"""The coordinator's store: SQLModel tables, Alembic migrations and small repository modules.

Repository functions are framework-free, take the engine or a connection first (``db``) and
everything else by keyword: :mod:`~coordinator.store.nodes`, :mod:`~coordinator.store.enrolment`,
:mod:`~coordinator.store.tokens`, :mod:`~coordinator.store.nonces`,
:mod:`~coordinator.store.messages`, :mod:`~coordinator.store.jobs`.
"""
