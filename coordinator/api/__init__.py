"""The coordinator's HTTP API: /healthz, and under /api the routes for admins, researchers and observers."""
