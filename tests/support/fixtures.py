"""Pytest fixtures for real components (registry, token service, git, GitHub REST server)."""
