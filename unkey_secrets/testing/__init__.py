"""Test kit: Unkey emulator, local servers and pytest fixtures."""
