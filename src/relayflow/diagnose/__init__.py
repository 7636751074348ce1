"""``relayflow diagnose``: each step's share of a workflow's TTR, cost, failures, escalations and
wrong answers over recorded runs, the bottleneck among them, and the knobs to turn for it."""
