"""Graph nodes: small async functions of (state, runtime) returning partial state."""
