"""Measuring quality: scoring an output against its reference, and the statistics (intervals,
tests) that bench, A/B, learning and routing use to compare what they measured."""
