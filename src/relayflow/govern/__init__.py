"""Governance: who may do what (access), what may be spent (budgets), and who is acting now."""
