"""Server-side tools the gateway can execute for a model: the interface, the registry and the
built-ins (calculator, date/time, sandboxed Python). Design and guarantees: docs/tools.md."""
