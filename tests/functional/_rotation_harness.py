"""Drive the rotation handler as Secrets Manager would, against moto server and the emulator.

The kit's moto server answers as AWS does and runs in this process, so ``SecretsManagerSim.start``
can do on moto's own state what RotateSecret does before it invokes the function (moto can only
invoke a real Lambda through docker). Kills are a ``BaseException`` raised from botocore's and
httpx's own event hooks, before a request is sent or after its answer came back.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from unkey_secrets.testing.moto import MotoServer

ACCOUNT = "123456789012"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class Killed(BaseException):
    """The Lambda process died here (timeout, OOM): nothing after this line runs."""


def backend_secret(moto: MotoServer, arn: str) -> Any:
    """moto's record of the secret (in-process server)."""
    from moto.secretsmanager.models import secretsmanager_backends

    return secretsmanager_backends[ACCOUNT][moto.region].secrets[arn]


@dataclass
class SecretsManagerSim:
    """What Secrets Manager does around the function: start a rotation, invoke the steps."""

    moto: MotoServer
    client: Any
    arn: str

    def start(self, token: str | None = None) -> str:
        """RotateSecret: a new version with AWSPENDING and no value yet, rotation enabled."""
        token = token or str(uuid.uuid4())
        secret = backend_secret(self.moto, self.arn)
        secret.rotation_requested = True
        secret.rotation_enabled = True
        secret.auto_rotate_after_days = 30
        secret.remove_version_stages_from_old_versions(["AWSPENDING"])
        secret.versions[token] = {
            "createdate": int(time.time()),
            "version_id": token,
            "version_stages": ["AWSPENDING"],
        }
        return token

    def event(self, token: str, step: str) -> dict[str, str]:
        return {"SecretId": self.arn, "ClientRequestToken": token, "Step": step}

    def stages(self) -> dict[str, list[str]]:
        """Labelled versions only: AWS leaves versions without labels out (deprecated)."""
        answer = self.client.describe_secret(SecretId=self.arn).get("VersionIdsToStages") or {}
        return {version: stages for version, stages in answer.items() if stages}

    def holder(self, stage: str) -> str | None:
        return next((v for v, s in self.stages().items() if stage in s), None)

    def value(self, **selector: str) -> str:
        return str(self.client.get_secret_value(SecretId=self.arn, **selector)["SecretString"])

    def all_values(self) -> dict[str, str]:
        """Every version's value, deprecated ones included."""
        secret = backend_secret(self.moto, self.arn)
        return {v: d["secret_string"] for v, d in secret.versions.items() if "secret_string" in d}


@dataclass
class Tracer:
    """Counts every outgoing call (AWS and Unkey) and kills the process at a chosen one."""

    calls: list[str] = field(default_factory=list)
    kill_at: tuple[int, str] | None = None  # (call index, "before" | "after")
    on_call: dict[tuple[str, str], Callable[[], None]] = field(default_factory=dict)

    def _before(self, name: str) -> None:
        self.calls.append(name)
        index = len(self.calls) - 1
        action = self.on_call.pop((name, "before"), None)
        if action is not None:
            action()
        if self.kill_at == (index, "before"):
            self.kill_at = None
            raise Killed(f"killed before call {index} ({name})")

    def _after(self, name: str) -> None:
        index = len(self.calls) - 1
        action = self.on_call.pop((name, "after"), None)
        if action is not None:
            action()
        if self.kill_at == (index, "after"):
            self.kill_at = None
            raise Killed(f"killed after call {index} ({name})")

    def watch_boto(self, client: Any) -> None:
        def before(model: Any, **_: Any) -> None:
            self._before("aws." + model.name)

        def after(model: Any, **_: Any) -> None:
            self._after("aws." + model.name)

        client.meta.events.register("before-call.secrets-manager", before)
        client.meta.events.register("after-call.secrets-manager", after)

    def httpx_client(self) -> httpx.Client:
        def request(req: httpx.Request) -> None:
            self._before("unkey." + req.url.path.rsplit("/", 1)[-1])

        def response(res: httpx.Response) -> None:
            self._after("unkey." + res.request.url.path.rsplit("/", 1)[-1])

        return httpx.Client(event_hooks={"request": [request], "response": [response]})


@contextmanager
def short_circuit(client: Any, operation: str, code: str, status: int = 400) -> Iterator[None]:
    """Make the next ``operation`` fail with ``code`` without reaching the server."""
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    fired: list[bool] = []

    def hook(model: Any, **_: Any) -> Any:
        if model.name != operation or fired:
            return None
        fired.append(True)
        http = AWSResponse("http://127.0.0.1", status, HTTPHeaders(), None)
        error = {"Error": {"Code": code, "Message": "injected"}}
        return http, {**error, "ResponseMetadata": {"HTTPStatusCode": status}}

    client.meta.events.register_first("before-call.secrets-manager", hook)
    yield
    client.meta.events.unregister("before-call.secrets-manager", hook)
