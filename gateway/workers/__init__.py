"""Process entry points beside the gateway: the durable-flow worker (``python -m
gateway.workers.durable``) and the Celery jobs worker (``celery -A gateway.workers.jobs worker``),
and ``open_completions``, which opens the gateway's own request path in such a process. Nothing in
the gateway imports this package: it sits on top of everything (docs/architecture.md)."""
