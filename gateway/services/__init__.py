"""Use cases the routers call."""
