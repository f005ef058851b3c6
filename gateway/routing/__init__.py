"""Routing: aliases, splits, smart routing, fallbacks, circuit breakers (config: ``gateway.config``)."""
