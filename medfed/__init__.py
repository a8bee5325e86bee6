"""medfed: the command line and the researcher SDK (the only package that sees both node and coordinator)."""
