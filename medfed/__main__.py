"""``python -m medfed`` runs the ``medfed`` command (the demo starts its processes this way)."""

from medfed.cli import main

main()
