"""Money on the request path: metering and pricing of usage, rate limits and budgets and their
shared state, attribution (users, tags), budget alerts."""
