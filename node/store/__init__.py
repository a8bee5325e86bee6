"""The node's store: SQLModel tables, Alembic migrations, resource writes and FHIR search in SQL."""
