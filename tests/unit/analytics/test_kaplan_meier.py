"""Kaplan–Meier over TCGA's 6 regions equals lifelines on the pooled rows: survival to 1e-9, at-risk exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter  # type: ignore[import-untyped]  # no stubs or py.typed

from common.analytics.kaplan_meier import KaplanMeierResult
from common.analytics.local import run_local
from common.errors import ErrorCode, InputError
from tests.unit.analytics.reference import as_float, pooled


def test_kaplan_meier_equals_lifelines(tcga_nodes: list[pd.DataFrame]) -> None:
    """Survival, numbers at risk, events and censorings match lifelines at every distinct time."""
    result = run_local("kaplan_meier", {"time": "T", "event": "E"}, tcga_nodes)
    assert isinstance(result, KaplanMeierResult)
    table = as_float(pooled(tcga_nodes)[["T", "E"]])
    fitter = KaplanMeierFitter().fit(table["T"], table["E"])
    events = fitter.event_table
    times = np.asarray(result.times)
    assert times.tolist() == [t for t in events.index.tolist() if t in set(table["T"])]
    assert result.at_risk == events.loc[times, "at_risk"].astype(int).tolist()
    assert result.events == events.loc[times, "observed"].astype(int).tolist()
    assert result.censored == events.loc[times, "censored"].astype(int).tolist()
    survival = fitter.survival_function_.iloc[:, 0].loc[times].to_numpy()
    assert np.max(np.abs(np.asarray(result.survival) - survival)) <= 1e-9
    assert (result.n, sum(result.events)) == (1088, 151)


def test_kaplan_meier_of_one_node_equals_lifelines_on_that_node(tcga_nodes: list[pd.DataFrame]) -> None:
    """The smallest region alone (51 patients, 3 events) also matches, including its numbers at risk."""
    result = run_local("kaplan_meier", {"time": "T", "event": "E"}, tcga_nodes[5:])
    assert isinstance(result, KaplanMeierResult)
    table = as_float(tcga_nodes[5][["T", "E"]])
    fitter = KaplanMeierFitter().fit(table["T"], table["E"])
    survival = fitter.survival_function_.iloc[:, 0].loc[result.times].to_numpy()
    assert np.max(np.abs(np.asarray(result.survival) - survival)) <= 1e-9
    assert result.at_risk == fitter.event_table.loc[result.times, "at_risk"].astype(int).tolist()


def test_event_values_other_than_0_and_1_are_refused() -> None:
    """An event column holding 2 is refused, naming the column."""
    frame = pd.DataFrame({"t": [1.0, 2.0], "e": [1, 2]})
    with pytest.raises(InputError) as caught:
        run_local("kaplan_meier", {"time": "t", "event": "e"}, [frame])
    assert caught.value.code is ErrorCode.DATA_OUTSIDE_DECLARED
    assert caught.value.hints == ("e: value(s) other than 0 and 1",)


def test_rows_with_a_missing_time_or_event_are_counted_as_missing() -> None:
    """Incomplete rows are left out of the curve and counted."""
    frame = pd.DataFrame({"t": [1.0, np.nan, 3.0, 4.0], "e": [1.0, 1.0, np.nan, 0.0]})
    result = run_local("kaplan_meier", {"time": "t", "event": "e"}, [frame])
    assert isinstance(result, KaplanMeierResult)
    assert (result.n, result.missing, result.times, result.survival) == (2, 2, [1.0, 4.0], [0.5, 0.5])
