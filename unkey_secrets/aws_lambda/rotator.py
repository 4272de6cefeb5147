"""Secrets Manager's four rotation steps for a secret holding an Unkey key, crash-consistent.

The secret's value is the stored JSON shape (:func:`unkey_secrets.stores.key_fields`); every
version's VersionId is the rotation's ClientRequestToken, so the version history is the key
history.

How a rotation survives a crash or a retry at any line:

* createSecret first writes a marker into the original key's ``meta``: the rotation's token and
  the original's pre-rotation expiry. It then rerolls with a long *hold* (the original must not
  expire while the rotation is in flight), puts the original's own expiry back, and puts the new
  key as AWSPENDING under the token. rerollKey copies ``meta``, so every key a reroll for this
  token made carries the token too, stored or not.
* A retry that finds the marker already set reads the pre-rotation expiry back from ``meta``, so
  nothing is lost if the process died between the reroll and the restore.
* Keys marked with the token that the secret does not hold are found with ``apis.listKeys`` and
  deleted, but only once the AWSPENDING version holds a value: then the winner is known, so a
  sweep can never delete a key that an overlapping invocation is about to store. Only a
  rotation whose record says an attempt may have been lost pays for that listing (it grows with
  the API): a createSecret that finds the original already marked with its token (an earlier
  attempt got that far), finds the value already stored (a retry), lost the race to store it,
  or creates the first key sweeps; one that rerolled an original nobody had marked writes
  ``unkey_secrets_alone`` (the token) into the new key's ``meta``, and finishSecret sweeps
  unless the key it finishes carries it. A failed or killed step is run again with its token
  (as Secrets Manager does), and that run finds the marker or the stored value, so a key an
  attempt made before it died is always swept by a later step.
* finishSecret moves AWSCURRENT first and only then shortens the original's expiry to
  ``min(pre-rotation expiry, now + grace period)``. Everything after the move is idempotent and
  also runs when any step is called with a token that is already AWSCURRENT, so a crash after
  the move still converges. Its last act removes the marker from the new key's ``meta``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import (
    ConfigurationError,
    InvalidInputError,
    RotationStepError,
    StoredValueError,
    StoreError,
    UnkeyAmbiguousError,
    UnkeyAuthError,
    UnkeyError,
    UnkeyNotFoundError,
    UnkeyResponseError,
    UnkeySecretsError,
    UnkeyServerError,
)
from .._models import IssuedKey, StoredKey
from .._payload import key_fields
from .._redact import MaskedText, confined, guarded
from ..rotation.core import (
    LIBRARY_TOKEN_PREFIX,
    MARKER_META_KEY,
    PREVIOUS_EXPIRES_META_KEY,
    UnkeySide,
    marker_of,
)
from ..settle import describe_error
from ..stores.aws.secrets import AWSCURRENT, AWSPENDING, RotationSecrets, SecretState
from ..unkey import KeyInfo, UnkeyClient
from .config import RotationConfig
from .metrics import StepMetrics, key_age

__all__ = [
    "ALONE_META_KEY",
    "API_ID_TAG",
    "STEPS",
    "Rotator",
    "StepRecord",
]

logger = logging.getLogger("unkey_secrets.aws_lambda")

#: The secret tag naming the Unkey API a bootstrap creates the first key in.
API_ID_TAG = "unkey-api-id"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")

_TOKEN = re.compile(r"[A-Za-z0-9_\-]{32,64}")
#: The new key's ``meta`` member (the token) saying that the createSecret that made it found
#: no earlier attempt of the rotation, so finishSecret need not look for a key one made.
ALONE_META_KEY = "unkey_secrets_alone"
_OURS = frozenset({MARKER_META_KEY, PREVIOUS_EXPIRES_META_KEY, ALONE_META_KEY})


@dataclass
class StepRecord:
    """What one step did: becomes its one structured log line and the handler's return value."""

    secret: str
    step: str
    client_request_token: str
    api_id: str | None = None
    original_key_id: str | None = None
    key_id: str | None = None
    request_id: str | None = None
    outcome: str | None = None
    detail: str | None = None
    swept: list[str] = field(default_factory=list)
    original_expires: int | None = None
    #: ``issued_at`` of the key AWSCURRENT holds as the step ends (testSecret, finishSecret).
    current_key_issued_at: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def line(self) -> str:
        """The log line: JSON, no value from the secret other than key_ids."""
        fields = {"event": "unkey_secrets.rotation", **dataclasses.asdict(self)}
        return json.dumps({k: v for k, v in fields.items() if v not in (None, [])}, sort_keys=True)

    def result(self) -> dict[str, str | None]:
        """The handler's return value: step, outcome and key_ids only."""
        return {
            "step": self.step,
            "outcome": self.outcome,
            "original_key_id": self.original_key_id,
            "key_id": self.key_id,
        }


class Rotator:
    """Runs the rotation steps for one Secrets Manager client and one Unkey client.

    ``secrets_manager`` is a boto3 ``secretsmanager`` client; ``clock`` returns Unix seconds.

    ``metrics`` takes each step's metrics as one line of CloudWatch's embedded metric format
    (:class:`~unkey_secrets.aws_lambda.metrics.StepMetrics`), after its log line, whether the
    step succeeded or failed (the handler's writer puts each on standard output). An error it
    raises (``OSError``, ``ValueError``) is logged as a warning and never fails the step.

    ``reload_unkey`` is what Unkey refusing the root key (401 or 403) during a step calls, once
    per step: it reads the root key again and returns a client holding it, or None when it is
    unchanged, and the step then runs once more (with the new client, which every later step
    uses too). A second refusal fails the step with :class:`~unkey_secrets.RotationStepError`.
    A client it replaced is closed once no step is using it. Without ``reload_unkey``, a
    refusal fails the step as any other Unkey error does.
    """

    def __init__(
        self,
        secrets_manager: Any,
        unkey: UnkeyClient,
        config: RotationConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        reload_unkey: Callable[[], UnkeyClient | None] | None = None,
        metrics: Callable[[str], object] | None = None,
    ) -> None:
        self.secrets = RotationSecrets(secrets_manager)
        self.unkey = unkey
        self.config = config or RotationConfig()
        self.clock = clock
        self._reload_unkey = reload_unkey
        self._metrics = metrics
        # Guards the swap of self.unkey and the count of running steps. The Lambda runs one
        # invocation per container at a time; a Rotator shared by threads stays correct too.
        self._lock = threading.Lock()
        self._running = 0
        self._replaced: list[UnkeyClient] = []

    @guarded
    def handle(self, event: Mapping[str, Any]) -> dict[str, str | None]:
        """Run the step the rotation event names and log one line about it.

        When Unkey refuses the root key (401 or 403) and the rotator has ``reload_unkey``, the
        root key is read again and the step runs once more; the line's ``warnings`` say so. A
        second refusal, or a failed read, raises :class:`~unkey_secrets.RotationStepError`.
        An error leaving it has the locals of every finished frame below it cleared.
        With ``metrics``, the step's metrics follow its log line, a failed step's included.
        """
        started = time.perf_counter()
        secret_id, token, step = _read_event(event)
        record = StepRecord(secret=secret_id, step=step, client_request_token=token)
        used = self._begin()
        try:
            for attempt in (1, 2):
                try:
                    self._run(secret_id, token, step, record)
                    break
                except UnkeySecretsError as exc:
                    refused = _refusal(exc) if self._reload_unkey is not None else None
                    if refused is None:
                        raise
                    if attempt == 2:
                        # A step that wrapped the refusal says what it left (a key still valid).
                        left = "" if exc is refused else f": {exc}"
                        raise RotationStepError(
                            f"{record.warnings[0]}, and Unkey refused it again "
                            f"({describe_error(refused)}){left}; put a root key holding the "
                            "permissions this function needs into the secret "
                            "UNKEY_ROOT_KEY_SECRET_ID names, as AWSCURRENT",
                            step=step,
                            secret=record.secret,
                        ) from exc
                    why = f"{refused.operation} answered {refused.status}"
                # Run the step again. A 401/403 is Unkey refusing the request before acting on
                # it: a refused rerollKey (not idempotent) or createKey made no key, so unlike
                # a lost answer there is nothing to settle, and a refused updateKey or deleteKey
                # changed nothing. What the step did before (a marker on the original, say) is
                # what a stop at that line leaves; every step keeps the state its gate needs
                # (finishSecret's give-up takes AWSPENDING off last) so that its retry resumes
                # from there: this run is as safe as Secrets Manager's own retry of the step.
                note = self._reload(used, why, step, record.secret)
                record = StepRecord(
                    secret=secret_id, step=step, client_request_token=token, warnings=[note]
                )
        except BaseException as exc:
            record.outcome = "error"
            record.error = describe_error(exc)
            logger.error("%s", record.line())
            self._publish(secret_id, record, started, failed=True)
            raise
        finally:
            self._end()
        logger.info("%s", record.line())
        self._publish(secret_id, record, started, failed=False)
        return record.result()

    @guarded
    def close(self) -> None:
        """Close the Unkey client, and those it replaced; call it once no step runs."""
        with self._lock:
            clients, self._replaced = [self.unkey, *self._replaced], []
        for client in clients:
            client.close()

    def _publish(self, secret_id: str, record: StepRecord, started: float, *, failed: bool) -> None:
        """Hand the step's metrics to ``metrics``; never raises what writing them raises."""
        if self._metrics is None:
            return
        now = self.clock()
        age = None
        if record.step in ("testSecret", "finishSecret"):
            age = key_age(record.current_key_issued_at, now)
        measured = StepMetrics(
            secret_id=secret_id,
            step=record.step,
            client_request_token=record.client_request_token,
            failed=failed,
            outcome=record.outcome,
            duration=time.perf_counter() - started,
            keys_swept=len(record.swept),
            current_key_age=age,
            timestamp=now,
        )
        if not measured.publishable():
            logger.warning("no metrics for this step: its SecretId is no CloudWatch dimension")
            return
        try:
            self._metrics(measured.line())
        except (OSError, ValueError) as exc:
            # A closed or broken standard output must not fail a rotation that worked.
            logger.warning("could not write the step's metrics: %s", describe_error(exc))

    def _run(self, secret_id: str, token: str, step: str, record: StepRecord) -> None:
        state = self.secrets.describe(secret_id)
        record.secret = state.arn
        stages = self._gate(state, token, step)
        if AWSCURRENT in stages:
            record.outcome = "already-current"
            self._complete(state.arn, token, AWSPENDING in stages, record)
        else:
            getattr(self, "_" + step.removesuffix("Secret"))(state, token, record)

    # -- the root key ---------------------------------------------------------------------

    def _begin(self) -> UnkeyClient:
        with self._lock:
            self._running += 1
            return self.unkey

    def _end(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running:
                return
            replaced, self._replaced = self._replaced, []
        for client in replaced:
            client.close()

    def _reload(self, used: UnkeyClient, why: str, step: str, secret: str) -> str:
        """Read the root key again after Unkey refused ``used``'s; returns the step's note."""
        assert self._reload_unkey is not None
        refused = f"Unkey refused the root key ({why})"
        with self._lock:
            if self.unkey is not used:
                # A step on another thread read it again meanwhile: this step uses what it read.
                return f"{refused}; another step had read it again; ran the step again"
            try:
                fresh = self._reload_unkey()
            except UnkeySecretsError as exc:
                raise RotationStepError(
                    f"{refused} and reading it again failed: {describe_error(exc)}",
                    step=step,
                    secret=secret,
                ) from exc
            if fresh is None:
                return f"{refused}; read it again from its secret: unchanged; ran the step again"
            # Closed once no step uses it: another thread's step may be mid-request with it.
            self._replaced.append(self.unkey)
            self.unkey = fresh
        return f"{refused}; read it again from its secret: a new root key; ran the step again"

    # -- the gate -------------------------------------------------------------------------

    def _gate(self, state: SecretState, token: str, step: str) -> tuple[str, ...]:
        if not state.rotation_enabled:
            raise RotationStepError(
                f"secret {state.arn} does not have rotation enabled", step=step, secret=state.arn
            )
        stages = state.stages(token)
        if stages is None:
            raise RotationStepError(
                f"secret {state.arn} has no version {token}", step=step, secret=state.arn
            )
        if AWSCURRENT not in stages and AWSPENDING not in stages:
            raise RotationStepError(
                f"version {token} of secret {state.arn} is not AWSPENDING",
                step=step,
                secret=state.arn,
            )
        return stages

    # -- the steps ------------------------------------------------------------------------

    def _create(self, state: SecretState, token: str, record: StepRecord) -> None:
        pending = self.secrets.read_version(state.arn, token)
        if pending is not None:
            # A previous attempt stored its key; clear out what attempts that lost made.
            self._note(record, pending)
            record.outcome = "exists"
            keep = {k for k in (pending.key_id, pending.rerolled_from) if k is not None}
            record.swept = self._sweep_quietly(
                state.arn, pending.api_id, token, keep, pending.external_id, record
            )
            return
        # The version DescribeSecret named current, not whatever is current by now: an
        # overlapping invocation of this token may have finished meanwhile, and rerolling its
        # new key under the same token would mix the two rotations up.
        holder = state.holder_of(AWSCURRENT)
        current = None if holder is None else self.secrets.read_version(state.arn, holder)
        if current is None:
            # No original to tell an earlier attempt by: look for the keys one made.
            issued, alone = self._bootstrap(state, token, record), False
        else:
            issued, alone = self._reroll(state, current, token, record)
        record.key_id = issued.key_id
        record.request_id = issued.request_id
        self._store(state.arn, token, issued, record, sweep=not alone)
        if record.outcome == "lost-race":
            # The invocation that won may have finished the rotation before this one rerolled
            # or restored the original's expiry (writes Unkey cannot make conditional): look
            # again, after them, and finish it once more so the original ends as it should.
            after = self.secrets.describe(state.arn)
            stages = after.stages(token) or ()
            if AWSCURRENT in stages:
                self._complete(after.arn, token, AWSPENDING in stages, record)

    def _set(self, state: SecretState, token: str, record: StepRecord) -> None:
        pending = self._pending(state, token, "setSecret")
        self._note(record, pending)
        if pending.rerolled_from is not None:
            record.outcome = "nothing-to-do"
            record.detail = "rerollKey made the new key live; Unkey needs nothing in setSecret"
            return
        info = self.unkey.get_key(pending.key_id)
        if not info.enabled and (info.meta or {}).get(MARKER_META_KEY) == token:
            self.unkey.update_key(pending.key_id, enabled=True)
            record.outcome = "enabled"
            record.detail = "enabled the first key, created disabled by createSecret"
        else:
            record.outcome = "nothing-to-do"
            record.detail = "the first key is already enabled"

    def _test(self, state: SecretState, token: str, record: StepRecord) -> None:
        pending = self._pending(state, token, "testSecret")
        self._note(record, pending)
        self._note_current(state, record)
        result = self.unkey.verify_key(
            pending.secret, permissions=self.config.verify_permissions, credits_cost=0
        )
        if not result.valid:
            raise RotationStepError(
                f"verifyKey on pending key {pending.key_id} answered {result.code}",
                step="testSecret",
                secret=state.arn,
            )
        if result.key_id is not None and result.key_id != pending.key_id:
            raise RotationStepError(
                f"the pending value names key {pending.key_id} but its key verifies as "
                f"{result.key_id}",
                step="testSecret",
                secret=state.arn,
            )
        record.outcome = "valid"

    def _finish(self, state: SecretState, token: str, record: StepRecord) -> None:
        pending = self._pending(state, token, "finishSecret")
        holder = state.holder_of(AWSCURRENT)
        if pending.rerolled_from is not None and holder is not None:
            # Move AWSCURRENT only off the version holding the key this rotation rerolled:
            # UpdateSecretVersionStage names that version, so a writer that moved it meanwhile
            # (a library rotation of the same alias) makes the move fail rather than be undone.
            current = self.secrets.read_version(state.arn, holder)
            record.current_key_issued_at = None if current is None else current.issued_at
            if current is None or current.key_id != pending.rerolled_from:
                self._abandon(state, token, pending, current, record)
        self.secrets.move_stage(state.arn, AWSCURRENT, to_version=token, from_version=holder)
        record.outcome = "finished"
        self._complete(state.arn, token, True, record)

    def _abandon(
        self,
        state: SecretState,
        token: str,
        pending: StoredKey,
        current: StoredKey | None,
        record: StepRecord,
    ) -> None:
        """AWSCURRENT moved off the rerolled key during the rotation: this rotation lost.

        Deletes only its own new key, ends the original within the grace period (it is current
        no more), and only then takes AWSPENDING off its version; then raises: the next rotation
        rotates what is current now. AWSPENDING goes last because it is what lets a rerun of
        this step (Secrets Manager's retry, or ours after Unkey refused the root key) past the
        gate and back here: a stop at any line before leaves it, and the rerun, finding the
        pending key deleted and the original already cut, finishes what is left.
        """
        original = pending.rerolled_from
        assert original is not None
        now = "holds no unkey-secrets key" if current is None else f"holds key {current.key_id}"
        lost = (
            f"AWSCURRENT of {state.arn} no longer holds key {original}, which this rotation "
            f"rerolled (it {now}: another writer replaced it)"
        )
        self._delete(pending.key_id, state.arn, "finishSecret")
        try:
            self._end_replaced(original, pending.api_id, token, state.arn, record)
        except UnkeyError as exc:
            raise RotationStepError(
                f"{lost}; deleted the pending key {pending.key_id}, but ending key {original} "
                f"failed ({describe_error(exc)}): it stays valid; version {token} keeps "
                "AWSPENDING, so a retry of finishSecret ends it",
                step="finishSecret",
                secret=state.arn,
            ) from exc
        self.secrets.move_stage(state.arn, AWSPENDING, to_version=None, from_version=token)
        raise RotationStepError(
            f"{lost}; deleted the pending key {pending.key_id}, ended key {original} within the "
            "grace period and gave the rotation up; rotate again to rotate the current key",
            step="finishSecret",
            secret=state.arn,
        )

    # -- createSecret's parts -------------------------------------------------------------

    def _bootstrap(self, state: SecretState, token: str, record: StepRecord) -> IssuedKey:
        """The secret has no current value: create the first key, disabled until setSecret."""
        api_id = self._allowed_api(state)
        if api_id is None:
            raise ConfigurationError(
                f"secret {state.arn} has no current value; set UNKEY_API_ID or tag the secret "
                f"{API_ID_TAG}=<api_id> so its first key can be created"
            )
        record.api_id = api_id
        cfg = self.config
        try:
            issued = self.unkey.create_key(
                api_id,
                prefix=cfg.prefix,
                name=cfg.name,
                external_id=cfg.external_id,
                meta={MARKER_META_KEY: token},
                enabled=False,
            )
        except (UnkeyAmbiguousError, UnkeyServerError, UnkeyResponseError) as exc:
            raise self._settle_lost(state.arn, api_id, token, (), cfg.external_id, exc) from exc
        record.outcome = "created-first-key"
        return issued

    def _reroll(
        self, state: SecretState, current: StoredKey, token: str, record: StepRecord
    ) -> tuple[IssuedKey, bool]:
        """Mark the original and reroll it; the new key, and whether this attempt was alone.

        Alone: no earlier attempt of this rotation had marked the original, so none can have
        made a key (each marks before it rerolls, and a failed or killed one is run again).
        """
        original_id, api_id = current.key_id, current.api_id
        record.original_key_id, record.api_id = original_id, api_id
        allowed = self._allowed_api(state)
        if allowed is not None and allowed != api_id:
            raise ConfigurationError(
                f"secret {state.arn} holds a key of API {api_id}, but this function rotates "
                f"keys of API {allowed} only"
            )
        info = self.unkey.get_key(original_id)
        stale = (info.meta or {}).get(MARKER_META_KEY)
        settled = isinstance(stale, str) and stale != token
        if settled and self._settle_stale(
            state, str(stale), original_id, api_id, info.external_id, record
        ):
            info = self.unkey.get_key(original_id)
        meta = info.meta or {}
        override = None
        if marker_of(info) is not None and PREVIOUS_EXPIRES_META_KEY in meta:
            # Ours: what a previous attempt saved. Another's (abandoned, settled above): its
            # hold may still be on the key, and the real expiry is what it saved.
            saved = _expiry(meta[PREVIOUS_EXPIRES_META_KEY], original_id, state.arn)
            override = None if marker_of(info) == token else (saved,)
        # The shared protocol: mark, then reroll under the hold (capped by the own expiry).
        side = UnkeySide(self.unkey, api_id, token, clock=self.clock)
        original = side.mark(info, override=override)
        previous = original.previous_expires
        try:
            issued = side.reroll(original, self.config.hold)
        except (UnkeyAmbiguousError, UnkeyServerError, UnkeyResponseError) as exc:
            restore = (original_id, previous)
            raise self._settle_lost(
                state.arn, api_id, token, (original_id,), info.external_id, exc, restore
            ) from exc
        try:
            self.unkey.update_key(original_id, expires=previous)
        except UnkeyError as exc:
            # The hold keeps the original alive; finishSecret sets its final expiry anyway.
            record.warnings.append(
                f"could not restore {original_id}'s expiry: {describe_error(exc)}"
            )
        new_meta = original.info.meta
        if not original.resumed:
            new_meta = {**(new_meta or {}), ALONE_META_KEY: token}
        try:
            # rerollKey copied the original's expiry and meta as they were at that moment: a
            # hold and marks a library rotation put on it in between included. Nobody rotates
            # the new key before it is stored, so setting them now undoes no one's change.
            # Without this write the key carries no ALONE_META_KEY: finishSecret then sweeps.
            self.unkey.update_key(issued.key_id, expires=previous, meta=new_meta)
        except UnkeyError as exc:
            record.warnings.append(
                f"could not set {issued.key_id}'s expiry and marks: {describe_error(exc)}"
            )
        record.outcome = "rerolled"
        return issued, not original.resumed

    def _settle_stale(
        self,
        state: SecretState,
        stale: str,
        original_id: str,
        api_id: str,
        external_id: str | None,
        record: StepRecord,
    ) -> bool:
        """The key is marked by another rotation: finish it, or clear out what it left.

        Returns True when the key's ``meta`` may have changed.
        """
        if stale.startswith(LIBRARY_TOKEN_PREFIX):
            # A rotation by rotate(): its keys live in a store this function cannot see.
            raise RotationStepError(
                f"key {original_id} is being rotated by unkey-secrets' rotate() (rotation "
                f"{stale}); let it finish, then rotate again",
                step="createSecret",
                secret=state.arn,
            )
        stages = state.stages(stale) or ()
        if AWSCURRENT in stages:
            # That rotation stored this very key and died after moving AWSCURRENT.
            self._complete(state.arn, stale, AWSPENDING in stages, StepRecord(state.arn, "", ""))
            record.warnings.append(f"completed the unfinished rotation {stale} first")
            return True
        if AWSPENDING in stages:
            return False
        # Abandoned: its version lost AWSPENDING, so it can never finish; its keys are unused.
        swept = self._sweep(state.arn, api_id, stale, {original_id}, external_id)
        record.swept.extend(swept)
        if swept:
            record.warnings.append(f"deleted keys of the abandoned rotation {stale}")
        return False

    def _store(
        self, arn: str, token: str, issued: IssuedKey, record: StepRecord, *, sweep: bool
    ) -> None:
        """Put ``issued`` as AWSPENDING; settle a failed or lost put before giving up.

        Then, if ``sweep`` (an earlier attempt may have made keys) or the put lost the race to
        an overlapping invocation, delete the keys of attempts that lost.
        """
        # Confined: a log record made while the key is in flight (botocore's, a reader's) has it
        # masked, and the value is a MaskedText, so a frame holding it renders without it.
        with confined(issued.secret):
            try:
                self.secrets.put_pending(arn, token, MaskedText(json.dumps(key_fields(issued))))
            except (StoreError, InvalidInputError) as exc:
                # InvalidInputError: botocore refused the parameters; nothing was sent, and the
                # new key is deleted like after any other failed put.
                self._settle_put(arn, token, issued, exc, record)
        if not sweep and record.outcome != "lost-race":
            return
        # record.key_id is now the stored key: ours, or an overlapping invocation's (and
        # record.original_key_id the key that one rerolled).
        keep = {
            k
            for k in (record.key_id, record.original_key_id, issued.rerolled_from)
            if k is not None
        }
        record.swept += self._sweep_quietly(
            arn, issued.api_id, token, keep, issued.external_id, record
        )

    def _settle_put(
        self,
        arn: str,
        token: str,
        issued: IssuedKey,
        cause: StoreError | InvalidInputError,
        record: StepRecord,
    ) -> None:
        try:
            stored = self.secrets.read_version(arn, token)
        except StoreError as exc:
            raise RotationStepError(
                f"PutSecretValue failed ({describe_error(cause)}) and reading version {token} "
                f"back failed ({describe_error(exc)}); key {issued.key_id} is marked and the next "
                "attempt deletes it if it was not stored",
                step="createSecret",
                secret=arn,
            ) from exc
        if stored is not None and stored.key_id == issued.key_id:
            record.warnings.append(
                f"PutSecretValue answered {describe_error(cause)} but had stored it"
            )
            return
        self._delete(issued.key_id, arn, "createSecret")
        if stored is not None:
            # An overlapping invocation with the same token stored its key first.
            record.outcome = "lost-race"
            record.detail = f"deleted own key {issued.key_id}: version {token} was taken"
            self._note(record, stored)
            return
        raise RotationStepError(
            f"PutSecretValue failed ({describe_error(cause)}); deleted new key {issued.key_id}",
            step="createSecret",
            secret=arn,
        ) from cause

    def _settle_lost(
        self,
        arn: str,
        api_id: str,
        token: str,
        keep: Iterable[str],
        external_id: str | None,
        cause: UnkeyError,
        restore: tuple[str, int | None] | None = None,
    ) -> RotationStepError:
        """Unkey may have made a key without answering: delete what it made, undo the hold."""
        operation = "rerollKey" if restore else "createKey"
        try:
            keep = set(keep)
            stored = self.secrets.read_version(arn, token)
            if stored is not None:
                keep.add(stored.key_id)
            found = self._sweep(arn, api_id, token, keep, external_id)
            if restore is not None:
                self.unkey.update_key(restore[0], expires=restore[1])
        except (UnkeyError, StoreError) as exc:
            return RotationStepError(
                f"{operation} got no clear answer ({describe_error(cause)}) and settling it failed "
                f"({describe_error(exc)}); the next attempt deletes keys marked with {token}",
                step="createSecret",
                secret=arn,
            )
        done = [f"deleted key {k}" for k in found] or ["Unkey had not made a key"]
        if restore is not None:
            done.append(f"restored {restore[0]}'s expiry")
        return RotationStepError(
            f"{operation} got no clear answer ({describe_error(cause)}); " + "; ".join(done),
            step="createSecret",
            secret=arn,
        )

    # -- finishSecret's idempotent tail ---------------------------------------------------

    def _complete(self, arn: str, token: str, has_pending: bool, record: StepRecord) -> None:
        """Everything after AWSCURRENT moved; safe to repeat, cheap once done."""
        # The token's version holds AWSCURRENT now: the key noted before is current no more.
        record.current_key_issued_at = None
        if has_pending:
            self.secrets.move_stage(arn, AWSPENDING, to_version=None, from_version=token)
        try:
            stored = self.secrets.read_version(arn, token)
        except StoredValueError:
            record.detail = "the current value is not an unkey-secrets key; nothing to finish"
            return
        if stored is None:
            return
        self._note(record, stored)
        record.current_key_issued_at = stored.issued_at
        info = self.unkey.get_key(stored.key_id)
        meta = dict(info.meta or {})
        # Sweep and cut even when the new key's marks are gone: an overlapping invocation of
        # this token may have made a key, or put the original's expiry back, after they went.
        # Both only ever delete what no version holds and shorten, never lengthen, an expiry.
        # The sweep lists the API's keys: skipped when the createSecret that made the key was
        # alone (its mark, stripped below, so a repeat of this step sweeps).
        original = stored.rerolled_from
        keep = {stored.key_id} | ({original} if original else set())
        if meta.get(ALONE_META_KEY) != token:
            record.swept = self._sweep(arn, stored.api_id, token, keep, info.external_id)
        if original is not None:
            self._expire_original(original, stored.api_id, token, arn, record)
        if meta.get(MARKER_META_KEY) != token:
            return
        rest = {k: v for k, v in meta.items() if k not in _OURS}
        # rerollKey copied the original's expiry of that moment, which may have been a hold
        # (an overlapping invocation's reroll): the stored value says the key's own expiry.
        self.unkey.update_key(stored.key_id, meta=rest or None, expires=stored.expires)

    def _end_replaced(
        self, key_id: str, api_id: str, token: str, arn: str, record: StepRecord
    ) -> None:
        """End ``key_id``, which the secret no longer holds, within the grace period.

        Whoever marked it last: this rotation's reroll and restore may have lengthened its
        expiry after the writer that replaced it had cut it. Only ever shortens.
        """
        try:
            info = self.unkey.get_key(key_id)
        except UnkeyNotFoundError:
            return
        meta = info.meta or {}
        previous = info.expires
        if marker_of(info) is not None and PREVIOUS_EXPIRES_META_KEY in meta:
            saved = _expiry(meta[PREVIOUS_EXPIRES_META_KEY], key_id, arn)
            previous = saved if previous is None or saved is None else min(saved, previous)
        side = UnkeySide(self.unkey, api_id, token, clock=self.clock)
        target = side.cut_target(previous, self.config.grace_period)
        if info.expires is None or info.expires > target:
            self.unkey.update_key(key_id, expires=target)
        record.original_expires = min(target, info.expires or target)

    def _expire_original(
        self, key_id: str, api_id: str, token: str, arn: str, record: StepRecord
    ) -> None:
        try:
            info = self.unkey.get_key(key_id)
        except UnkeyNotFoundError:
            record.warnings.append(f"original key {key_id} no longer exists")
            return
        meta = info.meta or {}
        if meta.get(MARKER_META_KEY) != token:
            record.warnings.append(f"original key {key_id} is marked by another rotation")
            return
        previous = _expiry(meta.get(PREVIOUS_EXPIRES_META_KEY), key_id, arn)
        side = UnkeySide(self.unkey, api_id, token, clock=self.clock)
        target = side.cut_target(previous, self.config.grace_period)
        if info.expires is None or info.expires > target:
            self.unkey.update_key(key_id, expires=target)
            info = dataclasses.replace(info, expires=target)
        record.original_expires = info.expires

    # -- helpers --------------------------------------------------------------------------

    def _allowed_api(self, state: SecretState) -> str | None:
        configured, tagged = self.config.api_id, state.tags.get(API_ID_TAG)
        if configured and tagged and configured != tagged:
            raise ConfigurationError(
                f"UNKEY_API_ID and the {API_ID_TAG} tag of secret {state.arn} disagree"
            )
        return configured or tagged

    def _pending(self, state: SecretState, token: str, step: str) -> StoredKey:
        pending = self.secrets.read_version(state.arn, token)
        if pending is None:
            raise RotationStepError(
                f"version {token} of secret {state.arn} holds no value: createSecret has not "
                "finished",
                step=step,
                secret=state.arn,
            )
        return pending

    def _sweep(
        self, arn: str, api_id: str, token: str, keep: set[str], external_id: str | None
    ) -> list[str]:
        """Delete every key marked with ``token`` except ``keep``: made by lost attempts.

        A marked key that a labelled version of the secret holds was never made by this rotation: it
        is an original an attempt marked from a read the secret had moved past (another writer
        rotated it meanwhile, then the attempt died). It is never deleted; it is ended within
        the grace period (only ever shortened) and given its own meta back, unless it is current.
        """
        side = UnkeySide(self.unkey, api_id, token, clock=self.clock)
        marked = side.marked_keys(external_id, keep)
        if not marked:
            return []
        held, current = self._held_keys(arn)
        found = []
        for info in marked:
            if info.key_id not in held:
                side.delete(info.key_id)
                found.append(info.key_id)
            elif info.key_id != current:
                self._release_original(info, api_id, token, arn)
        return found

    def _held_keys(self, arn: str) -> tuple[set[str], str | None]:
        """Every key a labelled version of the secret holds, and AWSCURRENT's.

        An unlabelled version is one no reader asks for (an abandoned rotation's): its key is
        a leftover like any other.
        """
        held: set[str] = set()
        current = None
        for version, stages in self.secrets.describe(arn).versions.items():
            if not stages:
                continue
            try:
                stored = self.secrets.read_version(arn, version)
            except StoredValueError:
                continue
            if stored is None:
                continue
            held.add(stored.key_id)
            if AWSCURRENT in stages:
                current = stored.key_id
        return held, current

    def _release_original(self, info: KeyInfo, api_id: str, token: str, arn: str) -> None:
        """End a held key that a lost attempt marked (never lengthened) and strip our marks."""
        meta = info.meta or {}
        target = info.expires
        if PREVIOUS_EXPIRES_META_KEY in meta:
            saved = _expiry(meta[PREVIOUS_EXPIRES_META_KEY], info.key_id, arn)
            previous = saved if info.expires is None or saved is None else min(saved, info.expires)
            side = UnkeySide(self.unkey, api_id, token, clock=self.clock)
            cut = side.cut_target(previous, self.config.grace_period)
            target = cut if info.expires is None else min(cut, info.expires)
        rest = {k: v for k, v in meta.items() if k not in _OURS}
        self.unkey.update_key(info.key_id, meta=rest or None, expires=target)

    def _sweep_quietly(
        self,
        arn: str,
        api_id: str,
        token: str,
        keep: set[str],
        external_id: str | None,
        record: StepRecord,
    ) -> list[str]:
        """Sweep once the pending value is known; a failure is left for finishSecret."""
        try:
            return self._sweep(arn, api_id, token, keep, external_id)
        except (UnkeyError, StoreError) as exc:
            record.warnings.append(f"sweep failed, finishSecret retries it: {describe_error(exc)}")
            return []

    def _delete(self, key_id: str, arn: str, step: str) -> None:
        try:
            self.unkey.delete_key(key_id)
        except UnkeyNotFoundError:
            pass
        except UnkeyError as exc:
            raise RotationStepError(
                f"could not delete unstored key {key_id} ({describe_error(exc)}); it is marked and "
                "the next attempt deletes it",
                step=step,
                secret=arn,
            ) from exc

    def _note_current(self, state: SecretState, record: StepRecord) -> None:
        """Note when the key AWSCURRENT holds was issued, for its age; a failed read is a warning.

        The read serves the metric only: a step must not fail for it.
        """
        holder = state.holder_of(AWSCURRENT)
        if holder is None:
            return
        try:
            current = self.secrets.read_version(state.arn, holder)
        except StoreError as exc:
            record.warnings.append(f"could not read the current key's age: {describe_error(exc)}")
            return
        if current is not None:
            record.current_key_issued_at = current.issued_at

    @staticmethod
    def _note(record: StepRecord, stored: StoredKey) -> None:
        record.api_id = stored.api_id
        record.key_id = stored.key_id
        record.original_key_id = stored.rerolled_from


def _read_event(event: Mapping[str, Any]) -> tuple[str, str, str]:
    if not isinstance(event, Mapping):
        raise InvalidInputError("event", "expected a mapping")
    secret_id, token, step = (event.get(k) for k in ("SecretId", "ClientRequestToken", "Step"))
    if not isinstance(secret_id, str) or not 1 <= len(secret_id) <= 2048:
        raise InvalidInputError("SecretId", "expected a secret ARN or name")
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise InvalidInputError("ClientRequestToken", "expected 32-64 of [A-Za-z0-9_-]")
    if step not in STEPS:
        raise InvalidInputError("Step", f"expected one of {', '.join(STEPS)}")
    return secret_id, token, str(step)


def _refusal(exc: BaseException) -> UnkeyAuthError | None:
    """Unkey's 401/403 that ``exc`` is or was raised from (a step wraps some Unkey errors)."""
    cause: BaseException | None = exc
    for _ in range(8):  # the chains we build are short; a cycle must not loop
        if cause is None or isinstance(cause, UnkeyAuthError):
            return cause
        cause = cause.__cause__
    return None


def _expiry(value: object, key_id: str, arn: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise RotationStepError(
        f"key {key_id}'s meta.{PREVIOUS_EXPIRES_META_KEY} is not a timestamp or null",
        step="createSecret",
        secret=arn,
    )


def _ms(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() * 1000)
