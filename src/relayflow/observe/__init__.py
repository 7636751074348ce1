"""Observing runs: Prometheus metrics (and, later, tracing, drift and explanations)."""
