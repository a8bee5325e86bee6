"""The leak scans' search: a secret's forms as they could appear in a log, and which secrets a blob holds.

Both multi-process leak scans (the record locator's and the sentinel scan's) look for the same forms: the
value case-folded, its UTF-8 bytes in hex, and every base64 rendering of it whatever its alignment.
"""

from __future__ import annotations

import base64

Sentinels = dict[str, tuple[set[bytes], set[bytes]]]
"""Each sentinel's name: its case-folded text forms and its case-sensitive base64 forms."""


def text_forms(value: str) -> set[bytes]:
    """``value`` case-folded, and its UTF-8 bytes in lower-case hex (searched in case-folded text)."""
    return {value.casefold().encode(), value.encode().hex().encode()}


def base64_forms(raw: bytes) -> set[bytes]:
    """The parts of base64 (standard and URL-safe) of ``raw`` that do not depend on where it starts."""
    found: set[bytes] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).rstrip(b"=")
        core = encoded[(shift * 4 + 2) // 3 + 1 : -2] if shift else encoded[:-2]
        if len(core) >= 8:
            found |= {core, core.replace(b"+", b"-").replace(b"/", b"_")}
    return found


def found_in(data: bytes, sentinels: Sentinels) -> set[str]:
    """The names of the sentinels ``data`` holds in any of their forms."""
    folded = data.lower()
    return {
        name
        for name, (text, b64) in sentinels.items()
        if any(form in folded for form in text) or any(form in data for form in b64)
    }
