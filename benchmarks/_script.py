"""Lets ``python benchmarks/NAME.py`` run as ``python -m benchmarks.NAME`` does: the repo root first on ``sys.path``.

Run as a file, a script's ``sys.path[0]`` is ``benchmarks/`` itself, so ``from benchmarks.network import ...``
fails (the project installs ``medfed``, ``node``, ``coordinator`` and ``common``, not ``benchmarks``). Each
script that imports a sibling module starts with the same two lines, the one copy of the logic being here::

    if not __package__:  # run as a file (python benchmarks/NAME.py): put the repo root on sys.path
        import _script  # type: ignore[import-not-found]  # noqa: F401  # benchmarks/_script.py

Under ``python -m`` the script has a package and never imports this module. ``benchmarks/`` is replaced
rather than kept on the path, so a benchmark's module name can never shadow a top-level one.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = str(_HERE.parent)

sys.path[:] = [entry for entry in sys.path if not entry or Path(entry).resolve() != _HERE]
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
