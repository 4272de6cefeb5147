"""``python -m unkey_secrets.cli``: the ``unkey-secrets`` command."""

import sys

from .app import main

sys.exit(main())
