"""The distinct_count analysis' parameters and its release from a summed bitmap."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from common.analytics.cells import ReleasedCell
from common.analytics.distinct import DistinctCountParams, distinct_partial, distinct_result
from common.errors import ErrorCode, InputError

BUCKETS = 1 << 10


def _bitmap(set_buckets: int) -> list[int]:
    return [7] * set_buckets + [0] * (BUCKETS - set_buckets)


def test_the_estimate_is_released_rounded_to_five() -> None:
    """23 set buckets of 1,024 estimate 23.3 persons, released as 25."""
    result = distinct_result(DistinctCountParams(buckets=BUCKETS), _bitmap(23), nodes=3, min_cell=1)
    assert result.distinct == 25
    assert result.round_to == 5


def test_a_total_below_the_largest_minimum_cell_is_suppressed() -> None:
    """A total of about 12 is released with min_cell 5 and suppressed when a node declares min_cell 20."""
    params = DistinctCountParams(buckets=BUCKETS)
    assert distinct_result(params, _bitmap(12), nodes=2, min_cell=5).distinct == 10
    suppressed = distinct_result(params, _bitmap(12), nodes=2, min_cell=20).distinct
    assert suppressed == ReleasedCell(value=None, suppressed=True)


def test_a_bitmap_of_the_wrong_length_or_a_full_one_is_refused() -> None:
    """The summed vector must have one entry per bucket, and a full bitmap says: ask with more buckets."""
    params = DistinctCountParams(buckets=BUCKETS)
    with pytest.raises(InputError) as wrong:
        distinct_result(params, [0] * 10, nodes=2, min_cell=1)
    assert wrong.value.code is ErrorCode.INVALID_PARTIAL
    with pytest.raises(InputError):
        distinct_result(params, _bitmap(BUCKETS), nodes=2, min_cell=1)


def test_buckets_must_be_a_power_of_two() -> None:
    """1,000 buckets is refused; 1,024 is taken."""
    with pytest.raises(ValidationError):
        DistinctCountParams(buckets=1000)
    assert DistinctCountParams(buckets=1024).buckets == 1024


def test_a_frame_alone_cannot_answer_a_distinct_count() -> None:
    """The analysis needs the nodes' linkage key: run locally over frames it is refused with a reason."""
    with pytest.raises(InputError) as refused:
        distinct_partial(pd.DataFrame({"patient_id": ["a"]}), DistinctCountParams())
    assert refused.value.code is ErrorCode.INVALID_ANALYSIS
