"""Liveness and readiness, public and without details (no versions of dependencies, no counts)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from coordinator.api.deps import EngineDep

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz", name="health")
def healthz(engine: EngineDep) -> JSONResponse:
    """200 when the coordinator can reach its database, 503 otherwise."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})
