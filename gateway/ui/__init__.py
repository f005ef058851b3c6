"""The operator console's static files (``static/``), served at ``/ui`` by ``gateway.api.console``."""
