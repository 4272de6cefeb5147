"""Every flow against every channel: the canary plaintext shows up in none of them.

And every audit event a flow emitted (its own process's, and the CLI's ``--audit-log`` lines)
validates against the shipped schema, ``unkey-secrets/audit/v1``.
"""

from __future__ import annotations

from collections.abc import Callable

import jsonschema
import pytest

from unkey_secrets.telemetry import audit_schema

from ._canary import CHANNELS, FLOWS, FlowContext, FlowRun, run_flow


def test_canary_matrix(canary_case: tuple[str, str], canary_runs: Callable[[str], FlowRun]) -> None:
    flow_name, channel_name = canary_case
    run = canary_runs(flow_name)
    observed = CHANNELS[channel_name](run)
    leaks = run.leaks(observed)
    assert not leaks, (
        f"{flow_name}: canary fragments {leaks} found in the {channel_name} channel "
        f"(outcome: {type(run.error).__name__ if run.error else 'returned'})"
    )


#: Audit actions some flows must emit (each with the outcome it must have); the rest of the
#: flows' events are only checked against the schema.
EXPECTED_ACTIONS: dict[str, set[tuple[str, str]]] = {
    "provision-vault": {("key.created", "succeeded"), ("key.stored", "succeeded")},
    "rotate-aws": {("key.rotated", "succeeded"), ("key.cut", "succeeded")},
    "capture-vault": {("key.stored", "succeeded"), ("alias.moved", "succeeded")},
    "lambda-rotate-aws": {("key.rotated", "succeeded"), ("key.updated", "succeeded")},
    "lambda-put-fails": {("key.rotated", "succeeded"), ("key.deleted", "succeeded")},
    "cli-provision-vault-json": {("key.created", "succeeded"), ("alias.moved", "succeeded")},
}
#: Flows refused before anything changed (the store's preflight failed): no event at all.
CHANGE_NOTHING = frozenset({"provision-aws-store-down", "capture-vault-store-down"})


@pytest.mark.parametrize("flow_name", sorted(FLOWS))
def test_every_audit_event_follows_the_schema(
    flow_name: str, canary_runs: Callable[[str], FlowRun]
) -> None:
    run = canary_runs(flow_name)
    validator = jsonschema.Draft202012Validator(audit_schema())
    for event in run.audit:
        problems = [error.message for error in validator.iter_errors(event)]
        assert not problems, (event["action"], problems)
    emitted = {(event["action"], event["outcome"]) for event in run.audit}
    if flow_name in CHANGE_NOTHING:
        assert emitted == set()
    assert EXPECTED_ACTIONS.get(flow_name, set()) <= emitted, sorted(emitted)


def test_the_audit_and_otel_channels_find_a_planted_canary(
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The two channels can fail: a canary in an event, a span or a metric point is found."""
    from opentelemetry import metrics, trace

    from unkey_secrets.telemetry.audit import emit

    def plant(ctx: FlowContext) -> None:
        canary = ctx.canary()
        emit("key.updated", "succeeded", {"location": f"secret/{canary}"})
        tracer = trace.get_tracer("calibration")
        with tracer.start_as_current_span("planted", attributes={"note": canary[:20]}) as span:
            span.add_event("planted", {"note": canary[10:]})
        counter = metrics.get_meter("calibration").create_counter("calibration.planted")
        counter.add(1, {"note": canary})

    monkeypatch.setitem(FLOWS, "calibration-telemetry", plant)
    run = run_flow("calibration-telemetry", request, capfd)
    body = run.canaries[0].rpartition("_")[2]
    assert set(run.leaks(CHANNELS["audit"](run))) >= {run.canaries[0]}
    assert set(run.leaks(CHANNELS["otel"](run))) >= {body[: len(body) // 2], body[len(body) // 2 :]}


def test_the_otel_channel_holds_what_an_applications_span_records_of_an_error(
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each flow runs inside an application's span with the SDK's defaults, which record an
    escaping error's message and traceback (an event, the status description): a canary in
    that error is found in the channel."""

    def fail(ctx: FlowContext) -> None:
        raise RuntimeError(f"planted {ctx.canary()}")

    monkeypatch.setitem(FLOWS, "calibration-recorded-error", fail)
    run = run_flow("calibration-recorded-error", request, capfd)
    assert isinstance(run.error, RuntimeError)
    assert run.canaries[0] in CHANNELS["otel"](run)
