"""What the node and the coordinator must agree on: wire models, ids, errors, crypto and privacy recipes."""
