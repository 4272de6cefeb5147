"""``python -m unkey_secrets.cli``: the ``unkey-secrets`` command."""

from . import run

run()
