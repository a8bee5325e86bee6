"""From a table to model inputs as a :class:`~common.models.task.LearningTask` declares them.

One implementation for the node (its local train and test splits) and for benchmark harnesses that score
an exported model on a pooled test set, so both read columns, levels and missing values the same way:

1. keep the rows with a value in every column the task reads (inputs, outcome, split column): FLamby's
   ``dropna`` after it dropped the columns it does not use;
2. inputs: the ``features`` as numbers, then one 0/1 column per declared level of each ``categorical``
   column except the first; a value outside the declared levels is refused (``data_outside_declared``);
3. outcome: a 0/1 label (``value > positive_above``) or event flag and time;
4. split: the rows of the split column's ``train`` and ``test`` values (without a split column, the last
   fifth of the rows is the test split);
5. standardisation (``node_train``): every input z-scored with the mean and n-1 standard deviation of
   the training rows, plus :data:`~common.models.task.STANDARDIZE_EPSILON` (a constant column becomes 0
   on the training rows, as in FLamby).

Arrays come out as float32 (what the models take); statistics are computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from common.errors import ErrorCode, InputError
from common.models.task import STANDARDIZE_EPSILON, LearningTask

__all__ = ["Prepared", "Rows", "apply_standardization", "prepare", "standardization_stats", "table_rows"]

Floats = NDArray[np.float64]
_TEST_FRACTION = 0.2


@dataclass(frozen=True, slots=True)
class Rows:
    """Inputs and outcome of some rows: ``y`` is the 0/1 label, or ``(event, time)`` in two columns."""

    x: NDArray[np.float32]
    y: NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True, slots=True)
class Prepared:
    """A node's train and test rows, standardised as the task declares, and how many rows were dropped."""

    train: Rows
    test: Rows
    dropped: int


def _refuse(hint: str, code: ErrorCode = ErrorCode.INVALID_LEARNING_TASK) -> InputError:
    return InputError(code, detail="the learning task does not fit the data", hints=[hint])


def _used_columns(task: LearningTask) -> list[str]:
    columns = [*task.features, *(c.column for c in task.categorical)]
    columns += [c for c in (task.target, task.event, task.time) if c is not None]
    if task.split is not None:
        columns.append(task.split.column)
    return columns


def _numbers(column: pd.Series, location: str) -> Floats:
    values = pd.to_numeric(column, errors="coerce")
    if values.isna().any():
        raise _refuse(f"{location}: not a number")
    return np.asarray(values, dtype=np.float64)


def _complete_rows(frame: pd.DataFrame, task: LearningTask) -> pd.DataFrame:
    columns = _used_columns(task)
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise _refuse(f"columns: {len(missing)} named column(s) not in the source")
    used = frame[columns]
    return used[used.notna().all(axis=1)]


def _inputs(rows: pd.DataFrame, task: LearningTask) -> Floats:
    parts: list[Floats] = [_numbers(rows[name], f"features[{i}]")[:, None] for i, name in enumerate(task.features)]
    for i, categorical in enumerate(task.categorical):
        values = rows[categorical.column].astype(object)
        known = np.zeros(len(rows), dtype=bool)
        dummies: list[Floats] = []
        for position, level in enumerate(categorical.levels):
            hit = np.asarray([value == level for value in values], dtype=bool)
            known |= hit
            if position:
                dummies.append(hit.astype(np.float64)[:, None])
        if not known.all():
            raise _refuse(f"categorical[{i}]: value outside the declared levels", ErrorCode.DATA_OUTSIDE_DECLARED)
        parts += dummies
    return np.hstack(parts) if parts else np.zeros((len(rows), 0))


def _outcome(rows: pd.DataFrame, task: LearningTask) -> Floats:
    if task.event is not None and task.time is not None:
        events = _numbers(rows[task.event], "event")
        if not np.isin(events, (0.0, 1.0)).all():
            raise _refuse("event: not 0 or 1", ErrorCode.DATA_OUTSIDE_DECLARED)
        return np.column_stack([events, _numbers(rows[task.time], "time")])
    if task.target is None:  # LearningTask's validator rules this out
        raise _refuse("target: missing")
    return (_numbers(rows[task.target], "target") > task.positive_above).astype(np.float64)


def table_rows(frame: pd.DataFrame, task: LearningTask) -> tuple[Floats, Floats, pd.DataFrame]:
    """``(x, y, rows)`` of the complete rows of ``frame`` (unstandardised float64); ``rows`` are those rows."""
    rows = _complete_rows(frame, task)
    return _inputs(rows, task), _outcome(rows, task), rows


def standardization_stats(x: Floats) -> tuple[Floats, Floats]:
    """Per-column mean and n-1 standard deviation of ``x`` (at least two rows)."""
    if x.shape[0] < 2:
        raise _refuse("split.train: fewer than 2 rows to standardise with")
    return x.mean(axis=0), x.std(axis=0, ddof=1)


def apply_standardization(x: Floats, mean: Floats, std: Floats) -> Floats:
    """``(x - mean) / (std + 1e-9)``."""
    return (x - mean) / (std + STANDARDIZE_EPSILON)


def _rows(x: Floats, y: Floats) -> Rows:
    return Rows(np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32))


def prepare(frame: pd.DataFrame, task: LearningTask) -> Prepared:
    """The node's train and test rows of ``frame`` for ``task`` (see the module docstring)."""
    x, y, rows = table_rows(frame, task)
    if task.split is None:
        n_test = max(1, round(len(rows) * _TEST_FRACTION))
        is_test = np.arange(len(rows)) >= len(rows) - n_test
        is_train = ~is_test
    else:
        labels = rows[task.split.column].astype(str).to_numpy()
        is_train, is_test = labels == task.split.train, labels == task.split.test
    if is_train.sum() < 1 or is_test.sum() < 1:
        raise _refuse("split: no training or no test rows")
    x_train, x_test = x[is_train], x[is_test]
    if task.standardize == "node_train":
        mean, std = standardization_stats(x_train)
        x_train, x_test = apply_standardization(x_train, mean, std), apply_standardization(x_test, mean, std)
    return Prepared(_rows(x_train, y[is_train]), _rows(x_test, y[is_test]), dropped=len(frame) - len(rows))
