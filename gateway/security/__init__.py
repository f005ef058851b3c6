"""Identity, passwords, tokens, API keys and RBAC."""
