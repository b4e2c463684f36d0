"""Security: hostile input, secrets (issue 6)."""
