"""The ledger: one record per request, written off the hot path, queried by the usage API."""
