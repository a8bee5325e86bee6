"""The node's tamper-evident audit log: hash-chained, signed entries, receipts, verification and export.

- :mod:`~node.audit.entries` — what an entry is and which bytes are hashed and signed;
- :mod:`~node.audit.keys` — the audit key and the subject-pseudonym key;
- :mod:`~node.audit.log` — :class:`AuditLog`, the one writer, with a typed helper per event;
- :mod:`~node.audit.verify` — proving the chain, and checking it against a receipt;
- :mod:`~node.audit.receipts` — signed chain-head receipts and the thread that sends them;
- :mod:`~node.audit.export` — JSON lines for an auditor, and reading them back.

The rows live in :mod:`node.store.audit_chain`.
"""

from node.audit.entries import AuditKind
from node.audit.log import AuditLog, token_actor
from node.audit.receipts import ReceiptSender, chain_head_receipt
from node.audit.verify import VerifyReport, verify_chain, verify_rows

__all__ = [
    "AuditKind",
    "AuditLog",
    "ReceiptSender",
    "VerifyReport",
    "chain_head_receipt",
    "token_actor",
    "verify_chain",
    "verify_rows",
]
