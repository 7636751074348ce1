"""The core: the values every layer shares (handoff, result, usage, events), retry and backoff,
identifiers and money. It depends only on ``relayflow.errors``; everything else depends on it."""
