"""Which record each row of an analysis is: the identity its cell-key noise is derived from.

A cell's noise is a function of the records in it (:mod:`common.privacy.cell_key`), so the identity
must name the *record*, not the question. The rule:

* a **view** row is ``Type/id#ordinal`` (the loader's index): the resource the row was read from and
  its place among that resource's rows. The view's name is not part of it, so the same resource row
  keys alike in every view; in particular a patient-level view (one row per Patient resource) keys
  each patient as ``Patient/<id>#0`` in every such view, and a patient counted through
  ``patient_demographics`` or another patient-level view gets the same noise;
* a **dataset** row is ``dataset:<name>#<row number>``: a registered file has no resource ids, so its
  rows are its records (a re-registered file is new data: its snapshot and its rows' keys change).

Analyses count rows, so a cell's value is its number of rows and its key the min-hash of those rows'
identities; filters, ordering and the shape of the question (count, histogram bin, crosstab cell,
cohort) change neither.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from common.analytics.task import AnalysisTask

__all__ = ["Identities", "record_identities"]

Identities = npt.NDArray[np.object_]
"""The identities of a frame's rows, in row order (an object array of str, for boolean selection)."""


def record_identities(task: AnalysisTask, rows: pd.DataFrame) -> Identities:
    """The identity of every row of ``rows`` (see the module docstring)."""
    if task.source.dataset is not None:
        prefix = task.source.key + "#"
        return np.asarray([prefix + str(int(index)) for index in rows.index], dtype=object)
    return np.asarray([str(index) for index in rows.index], dtype=object)
