"""``relayflow optimize``: search a workflow's settings for the best trade-offs of accuracy,
cost, time and agent utilization, measured through the bench on the golden dev split."""
