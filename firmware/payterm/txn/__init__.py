"""Transactions: engine, STAN, power-safe journal and state, SAF, currency."""
