"""Analysis job results for researchers: tidy pandas DataFrames, and plots of histograms and survival.

An ``analysis`` job's result (what the coordinator stores) holds the analysis' merged result and, per
node, its snapshot id and the disclosure rules it applied. :func:`result_frame` turns the merged
result into one tidy DataFrame per analysis, always with two disclosure columns:

* ``suppressed``: True for a cell withheld by a node's disclosure control (its value is then missing,
  never 0);
* ``disclosure``: the release method the nodes applied (``none`` when control was off; the noise and
  suppression parameters of every node are in ``frame.attrs["disclosure"]``, the snapshot ids in
  ``frame.attrs["snapshots"]``).

A histogram released with its total has a ``total`` row; a crosstab's released margins are in
``frame.attrs["margins"]`` (``row_totals``, ``column_totals``, ``total``: counts, or None when
withheld). Released counts under cell-key noise are not additive: margins carry their own noise.

:func:`plot_result` draws a histogram's bars or a Kaplan-Meier step curve with the numbers at risk
under the time axis, with matplotlib's Agg backend (no display needed), to a PNG file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PLOTTABLE", "plot_result", "result_frame"]

PLOTTABLE = frozenset(("histogram", "kaplan_meier"))
_AT_RISK_TICKS = 6


def _cell(value: Any) -> tuple[Any, bool]:
    """A released cell (``{"value", "suppressed"}``) or a plain number, as (value, suppressed)."""
    if isinstance(value, Mapping) and "suppressed" in value:
        suppressed = bool(value["suppressed"])
        return (None if suppressed else value.get("value")), suppressed
    return value, False


def _method(document: Mapping[str, Any]) -> str:
    methods = {
        str((part.get("disclosure") or {}).get("method", "unknown"))
        for part in document.get("nodes", {}).values()
        if isinstance(part, Mapping)
    }
    return methods.pop() if len(methods) == 1 else ("mixed" if methods else "unknown")


def _count(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = [("rows", None, *_cell(result["rows"]))]
    rows += [("non_missing", column, *_cell(value)) for column, value in result["non_missing"].items()]
    return pd.DataFrame(rows, columns=["statistic", "column", "count", "suppressed"])


def _histogram(result: Mapping[str, Any]) -> pd.DataFrame:
    edges = result["edges"]
    rows = [("bin", edges[i], edges[i + 1], *_cell(count)) for i, count in enumerate(result["counts"])]
    rows += [
        ("underflow", -math.inf, edges[0], *_cell(result["underflow"])),
        ("overflow", edges[-1], math.inf, *_cell(result["overflow"])),
        ("missing", math.nan, math.nan, *_cell(result["missing"])),
    ]
    if result.get("total") is not None:
        rows.append(("total", -math.inf, math.inf, *_cell(result["total"])))
    return pd.DataFrame(rows, columns=["cell", "lower", "upper", "count", "suppressed"])


def _moments(result: Mapping[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(dict(result["columns"]), orient="index")
    frame.index.name = "column"
    frame["suppressed"] = frame["suppressed"].astype(bool) if "suppressed" in frame else False
    frame["missing"] = [_cell(value)[0] for value in frame["missing"]]
    return frame.reset_index()


def _quantiles(result: Mapping[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame({"probability": result["probabilities"], "quantile": result["values"]})
    frame["n"] = result["n"]
    frame["suppressed"] = result.get("suppressed") or False
    return frame


def _crosstab(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = [
        (row_level, column_level, *_cell(result["counts"][i][j]))
        for i, row_level in enumerate(result["row_levels"])
        for j, column_level in enumerate(result["column_levels"])
    ]
    frame = pd.DataFrame(rows, columns=["row", "column", "count", "suppressed"])
    frame.attrs["margins"] = {
        key: _margin(result.get(key)) for key in ("row_totals", "column_totals", "total") if result.get(key) is not None
    }
    return frame


def _margin(value: Any) -> Any:
    """A released margin (a count or a list of counts) as plain values, None where withheld."""
    if isinstance(value, list):
        return [_cell(item)[0] for item in value]
    return _cell(value)[0]


def _kaplan_meier(result: Mapping[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame({key: result[key] for key in ("times", "at_risk", "events", "censored", "survival")})
    frame = frame.rename(columns={"times": "time"})
    frame["suppressed"] = bool(result.get("suppressed", False))
    frame.attrs["truncated_at"] = result.get("truncated_at")
    return frame


def _model(result: Mapping[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "term": result["names"],
            "coef": result["params"],
            "std_err": result["bse"],
            "z": result["zvalues"],
            "p_value": result["pvalues"],
            "ci_lower": result["conf_int_lower"],
            "ci_upper": result["conf_int_upper"],
        }
    )
    frame["suppressed"] = False
    return frame


_FRAMES = {
    "count": _count,
    "histogram": _histogram,
    "moments": _moments,
    "quantiles": _quantiles,
    "crosstab": _crosstab,
    "kaplan_meier": _kaplan_meier,
    "glm": _model,
    "cox": _model,
}


def result_frame(document: Mapping[str, Any]) -> pd.DataFrame:
    """The tidy table of an ``analysis`` job's result document (see the module docstring)."""
    analysis = str(document.get("analysis"))
    convert = _FRAMES.get(analysis)
    if convert is None:
        raise ValueError(f"not an analysis result ({analysis})")
    frame = convert(document["result"])
    margins = frame.attrs.get("margins")
    frame["disclosure"] = _method(document)
    nodes = document.get("nodes", {})
    frame.attrs["analysis"] = analysis
    frame.attrs["disclosure"] = {name: part.get("disclosure") for name, part in nodes.items()}
    frame.attrs["snapshots"] = {name: part.get("snapshot") for name, part in nodes.items()}
    frame.attrs["rounds"] = document.get("rounds")
    if margins is not None:
        frame.attrs["margins"] = margins
    return frame


def _at_risk_at(times: np.ndarray, at_risk: np.ndarray, t: float) -> int:
    """Numbers at risk just before ``t``: those whose time is at or after ``t``."""
    later = np.flatnonzero(times >= t)
    return int(at_risk[later[0]]) if len(later) else 0


def plot_result(document: Mapping[str, Any], path: Path) -> None:
    """Write a PNG of a histogram (bars) or Kaplan-Meier (step curve, numbers at risk) result."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    analysis = str(document.get("analysis"))
    if analysis not in PLOTTABLE:
        raise ValueError(f"only {', '.join(sorted(PLOTTABLE))} results can be plotted")
    result = document["result"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    try:
        if analysis == "histogram":
            edges = np.asarray(result["edges"], dtype=float)
            counts = np.asarray([np.nan if v is None else v for v, _ in map(_cell, result["counts"])], dtype=float)
            axes.bar(edges[:-1], np.nan_to_num(counts), width=np.diff(edges), align="edge", edgecolor="black")
            axes.set_ylabel("count")
            missing, below, above = (_cell(result[key])[0] for key in ("missing", "underflow", "overflow"))
            axes.set_title(f"histogram ({missing} missing, {below} below, {above} above the bounds)")
        else:
            times = np.asarray(result["times"], dtype=float)
            survival = np.asarray(result["survival"], dtype=float)
            at_risk = np.asarray(result["at_risk"], dtype=float)
            axes.step(np.concatenate(([0.0], times)), np.concatenate(([1.0], survival)), where="post")
            axes.set_ylim(0, 1.05)
            axes.set_ylabel("survival probability")
            axes.set_title(f"Kaplan-Meier (n = {result['n']}, {sum(result['events'])} events)")
            end = float(times.max()) if len(times) else 1.0
            ticks = np.linspace(0.0, end, _AT_RISK_TICKS)
            axes.set_xticks(ticks)
            for t in ticks:
                axes.annotate(
                    str(_at_risk_at(times, at_risk, float(t))),
                    xy=(float(t), 0),
                    xycoords=("data", "axes fraction"),
                    xytext=(0, -44),
                    textcoords="offset points",
                    ha="center",
                    fontsize=8,
                )
            axes.annotate(
                "at risk",
                xy=(0, 0),
                xycoords="axes fraction",
                xytext=(-8, -44),
                textcoords="offset points",
                ha="right",
                fontsize=8,
            )
        axes.set_xlabel("time" if analysis == "kaplan_meier" else "value")
        figure.subplots_adjust(left=0.12, right=0.96, bottom=0.2 if analysis == "kaplan_meier" else 0.12)
        figure.savefig(path, format="png", dpi=100)
    finally:
        plt.close(figure)
