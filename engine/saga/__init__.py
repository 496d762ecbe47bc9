"""The saga engine: sagas, steps, transactions, recovery and storage."""
