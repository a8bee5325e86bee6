"""The node's side of privacy: its disclosure secret and its epsilon ledger (the maths is in common.privacy)."""
