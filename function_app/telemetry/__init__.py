"""Observability: traces, Prometheus metrics, the JSON request log and the dashboard (#13)."""
