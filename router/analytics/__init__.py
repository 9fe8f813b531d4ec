"""Reading the ledger back: the usage API, the dashboard and its insights, the report, FOCUS
and spend-log exports, the build-or-buy advice, plots."""
