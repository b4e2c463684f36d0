"""Reliability: registry faults, partial failure, races (issue 6)."""
