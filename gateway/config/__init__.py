"""The application's configuration: every config model and the loaders, in one place.

``settings`` holds the process settings (``GATEWAY_*`` environment variables); ``routing`` the
routing file (``prism.yaml``) and its root model ``RoutingConfig``, whose sections live beside it
(``quotas``, ``experiments``, ``guardrails``, ``providers``). This package imports nothing else
from ``gateway``: feature packages import their config from here, never from each other
(docs/architecture.md).
"""
