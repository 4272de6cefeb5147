"""Every flow against every channel: the canary plaintext shows up in none of them."""

from __future__ import annotations

from collections.abc import Callable

from ._canary import CHANNELS, FlowRun


def test_canary_matrix(canary_case: tuple[str, str], canary_runs: Callable[[str], FlowRun]) -> None:
    flow_name, channel_name = canary_case
    run = canary_runs(flow_name)
    observed = CHANNELS[channel_name](run)
    leaks = run.leaks(observed)
    assert not leaks, (
        f"{flow_name}: canary fragments {leaks} found in the {channel_name} channel "
        f"(outcome: {type(run.error).__name__ if run.error else 'returned'})"
    )
