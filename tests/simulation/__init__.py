"""The deterministic simulator: every write path under every schedule up to a bound."""
