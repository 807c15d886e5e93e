"""Reporting: the register exported, indicators, the status of a run."""
