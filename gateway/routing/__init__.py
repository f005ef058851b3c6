"""The routing config, aliases, splits, fallbacks and circuit breakers."""
