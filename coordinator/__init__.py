"""The central service: node registry, jobs and rounds, the pseudonymous patient index."""
