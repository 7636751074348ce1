"""A/B tests of workflow variants: sticky assignment, routing live traffic, the winner's rollout."""
