"""``python -m unkey_secrets.testing.emulator``: run the emulator from the command line."""

import sys

from .server import main

sys.exit(main())
