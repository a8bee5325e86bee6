"""The aim-higher search's folds (``benchmarks.flamby_search``): built from training rows only, each held out once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.flamby import Dataset
from benchmarks.flamby_search import fold_frames, node_frames


def _dataset(centres: list[pd.DataFrame]) -> Dataset:
    schema = {
        "description": "two columns and FLamby's split",
        "format": "csv",
        "csv": {"header": True, "delimiter": ","},
        "columns": [{"name": "x", "type": "decimal"}, {"name": "split", "type": "string"}],
    }
    empty = pd.DataFrame()
    return Dataset("toy", "accuracy", centres, schema, {}, 1, empty, empty, (np.zeros((0, 1)), np.zeros(0)))


def test_the_nodes_of_the_search_never_hold_a_test_row(tmp_path: Path) -> None:
    """Each centre's frame in the search is its ``train`` rows only: FLamby's test rows never reach a node."""
    centres = [
        pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "split": ["train", "test", "train", "test"]}),
        pd.DataFrame({"x": [5.0, 6.0, 7.0], "split": ["test", "train", "train"]}),
    ]
    frames = node_frames(_dataset(centres), tmp_path)
    assert [frame["x"].tolist() for frame in frames] == [[1.0, 3.0], [6.0, 7.0]]


def test_every_training_row_is_held_out_in_exactly_one_fold() -> None:
    """Over the folds, each centre's rows are validation once and training otherwise."""
    frames = [pd.DataFrame({"x": np.arange(n, dtype=float), "split": "train"}) for n in (10, 7)]
    held_out = [np.zeros(len(frame), dtype=int) for frame in frames]
    for fold in range(4):
        for centre, frame in enumerate(fold_frames(frames, 4, fold)):
            assert frame["x"].tolist() == frames[centre]["x"].tolist()
            assert set(frame["split"]) <= {"train", "test"}
            held_out[centre] += (frame["split"] == "test").to_numpy()
    assert all((counts == 1).all() for counts in held_out)
