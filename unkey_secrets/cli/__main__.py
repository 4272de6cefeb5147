"""``python -m unkey_secrets.cli``: the ``unkey-secrets`` command."""

from .app import run

run()
