"""Benchmarks of workflows: accuracy scoring, statistics, and the bench's four columns."""
