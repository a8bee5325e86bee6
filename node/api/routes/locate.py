"""``GET /locate?patient=ID&purpose=treatment``: where else is this patient known, and what do they hold?

For clinicians (the ``clinician`` role), at most ``locate_burst`` lookups at once per token, refilled at
``locate_refill_per_s`` (then 429 ``RATE_LIMITED``, before the index is asked). The node asks the
coordinator's patient index and each holding node in turn (:func:`node.locator.asker.locate`) and
answers with one entry per holding node: its origin (node id), the index's decision, and what it
released (a searchset Bundle) or why it refused. Blocking (it waits for the other nodes, at most about
20 s), so it runs in a worker thread. The call is audited like every call with a token (the patient id,
how many nodes released), and each exchange with the purpose of use in ``locator_audit`` on both sides.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from common.errors import AccessError, ConfigError, ErrorCode
from common.limits import TokenBucketLimiter
from node.api.deps import Reader
from node.locator.asker import locate
from node.locator.context import LocatorContext
from node.store.tokens import Principal, Role

__all__ = ["router"]

router = APIRouter()


def _clinician(principal: Reader) -> Principal:
    if principal.role is not Role.CLINICIAN:
        raise AccessError(ErrorCode.FORBIDDEN)
    return principal


def _context(request: Request) -> LocatorContext:
    context: LocatorContext | None = getattr(request.app.state, "locator", None)
    if context is None:
        raise ConfigError(ErrorCode.LINKAGE_NOT_CONFIGURED, detail="the node is not enrolled; no record locator")
    return context


Clinician = Annotated[Principal, Depends(_clinician)]


@router.get("/locate", name="locate")
def get_locate(
    request: Request,
    principal: Clinician,
    patient: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-.]+$")],
    purpose: Annotated[str, Query(max_length=32)] = "treatment",
) -> dict[str, Any]:
    """The patient's records at other nodes, with their origin."""
    request.state.resource_id = patient
    limiter: TokenBucketLimiter = request.app.state.locate_limiter
    limiter.take(f"token:{principal.token_id}", detail="record-locator lookups over the token's rate")
    result = locate(_context(request), patient, purpose=purpose, token_id=principal.token_id)
    answer = result.as_dict()
    request.state.result_count = answer["released"]
    return answer
