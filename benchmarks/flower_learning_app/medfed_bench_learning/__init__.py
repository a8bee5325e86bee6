"""A stock-Flower app running the same learning job as medfed's ``learning`` app, for the overhead ratio."""
