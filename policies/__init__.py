"""Routing policies, pure: schema, candidate selection, quality prediction, offline evaluation.
Knows prices through ``pricing``; never does HTTP or storage I/O."""
