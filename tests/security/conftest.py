"""The canary harness as fixtures: the flows x channels matrix, and its size in the summary.

``canary_runs`` runs each registered flow once per session (on first use, with its own captured
stdout/stderr) and hands the :class:`~_canary.FlowRun` to every channel's check. Add a flow by
decorating a function with ``_canary.flow`` in a module imported here; add a channel with
``_canary.channel``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from . import _flows  # noqa: F401 (registers the flows)
from ._canary import CHANNELS, FLOWS, KNOWN_LEAKS, FlowRun, run_flow


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``canary_case`` over every flow x channel."""
    if "canary_case" not in metafunc.fixturenames:
        return
    cases = []
    for flow_name in FLOWS:
        for channel_name in CHANNELS:
            reason = KNOWN_LEAKS.get((flow_name, channel_name))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(
                pytest.param(
                    (flow_name, channel_name), id=f"{flow_name}-{channel_name}", marks=marks
                )
            )
    metafunc.parametrize("canary_case", cases)


@pytest.fixture(scope="session")
def _canary_cache() -> dict[str, FlowRun]:
    return {}


@pytest.fixture
def canary_runs(
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
    _canary_cache: dict[str, FlowRun],
) -> Callable[[str], FlowRun]:
    """Return ``run(flow_name)``: the flow's observed run, made once per session."""

    def run(name: str) -> FlowRun:
        if name not in _canary_cache:
            _canary_cache[name] = run_flow(name, request, capfd)
        return _canary_cache[name]

    return run


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the matrix size, so its growth shows in every run (CI logs included)."""
    ran = [
        r
        for key in ("passed", "failed", "xfailed", "xpassed")
        for r in terminalreporter.stats.get(key, [])
        if "test_canary_matrix" in getattr(r, "nodeid", "") and r.when == "call"
    ]
    if ran:
        terminalreporter.write_line(
            f"canary matrix: {len(FLOWS)} flows x {len(CHANNELS)} channels = "
            f"{len(FLOWS) * len(CHANNELS)} checks ({len(ran)} run)"
        )
