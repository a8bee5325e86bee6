"""The generator's fixed calendar: a reference "today" and the date formats, never the wall clock.

Every time is an integer count of seconds since 1970-01-01T00:00:00Z, so that generated records are
byte-identical from run to run; FHIR strings are written in UTC (``+00:00``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["DAY", "HOUR", "TODAY", "WINDOW_START", "YEAR", "date_string", "datetime_string"]

DAY = 86_400
HOUR = 3_600
YEAR = 31_556_952  # 365.2425 days
TODAY = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
# Encounters fall in the ten years before TODAY (or before death, and after birth).
WINDOW_START = TODAY - 10 * YEAR


def datetime_string(ts: int) -> str:
    """FHIR ``dateTime``/``instant`` in UTC with seconds: ``2024-05-03T10:15:00+00:00``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def date_string(ts: int) -> str:
    """FHIR ``date`` of the UTC day holding ``ts``: ``1957-11-30`` (works before 1970 too)."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))
