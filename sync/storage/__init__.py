"""Storage: one contract (:mod:`sync.storage.contract`), the logic every backend shares
(:mod:`sync.storage.shared`), the SQL both backends run (``sql_*.py``), and the backends
(:mod:`sync.storage.sqlite`, :mod:`sync.storage.postgres`).

The engine imports only the contract; the server picks a backend at start-up.
"""

from sync.storage.contract import BatchTx, Store, Transaction

__all__ = ["BatchTx", "Store", "Transaction"]
