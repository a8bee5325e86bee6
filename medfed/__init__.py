"""medfed: the command line and the researcher SDK (the only package that sees both node and coordinator).

``from medfed import Federation`` is the SDK's client (:mod:`medfed.sdk`), imported on first use so the
command line does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medfed.sdk import Federation, FederationError

__all__ = ["Federation", "FederationError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from medfed import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'medfed' has no attribute {name!r}")
