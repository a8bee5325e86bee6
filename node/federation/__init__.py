"""The node's side of the federation: warm ClientApps and their host (the channel client arrives separately)."""
