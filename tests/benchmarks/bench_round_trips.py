"""Round trips per flow, against the floor, each call beyond the floor named.

For each flow (provision safe and fast, without an alias; rotate by alias; capture, under a
new alias, of a key the caller made with ``unkey.create_key``, that call counted) and each
store (Vault, Secrets Manager), one run against the local stack (OpenBao dev server, moto
server, the Unkey emulator on loopback) records every call in order: Unkey's (a log of each
request's operation and body members, checked against the emulator's own ``calls`` counter),
the store's (hvac's adapter for Vault, botocore's ``before-call`` hook for Secrets Manager).
Each call gets a label; the flow's calls are compared with its FLOOR, the calls any correct
implementation needs, and what is left over is printed by label, in the order made.

The store object is warm: each flow runs once unmeasured before the REPEATS measured runs
(which must all make the same calls), so its once-per-object live preflight is paid before;
what that preflight costs a new store object is printed on its own lines.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from unkey_secrets import SecretStore, UnkeyClient, capture, provision, rotate
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import Emulator, EmulatorServer, Response
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

REPEATS = int(os.environ.get("BENCH_ROUND_TRIP_REPEATS", "3"))
GRACE = dt.timedelta(hours=1)
FLOWS = ("provision safe", "provision fast", "rotate by alias", "capture")

#: The minimum any correct implementation needs, per flow and store, as call labels.
FLOORS: dict[tuple[str, str], tuple[str, ...]] = {
    ("provision fast", "vault"): (
        "unkey keys.createKey",
        "vault write data key cas=0",
        "vault write metadata key",
    ),
    ("provision fast", "aws"): ("unkey keys.createKey", "aws CreateSecret key"),
    ("provision safe", "vault"): (
        "unkey keys.createKey",
        "vault write data key cas=0",
        "vault write metadata key",
        "unkey keys.updateKey(enabled,meta)",
    ),
    ("provision safe", "aws"): (
        "unkey keys.createKey",
        "aws CreateSecret key",
        "unkey keys.updateKey(enabled,meta)",
    ),
    # Read which key the alias names, reroll it (the original's expiry set by the reroll
    # itself), store the new key, move the alias (data and the metadata naming the key, for
    # Vault's writer that may not read data; one PutSecretValue for Secrets Manager).
    ("rotate by alias", "vault"): (
        "vault read metadata alias",
        "unkey keys.rerollKey",
        "vault write data key cas=0",
        "vault write metadata key",
        "vault write metadata alias",
        "vault write data alias cas=N",
    ),
    ("rotate by alias", "aws"): (
        "aws GetSecretValue alias",
        "unkey keys.rerollKey",
        "aws CreateSecret key",
        "aws PutSecretValue alias",
    ),
    # The caller's createKey, then the key stored and a new alias created, each create-only.
    ("capture", "vault"): (
        "unkey keys.createKey",
        "vault write data key cas=0",
        "vault write metadata key",
        "vault write data alias cas=0",
        "vault write metadata alias",
    ),
    ("capture", "aws"): (
        "unkey keys.createKey",
        "aws CreateSecret key",
        "aws CreateSecret alias",
    ),
}


def _kind(path: str) -> str:
    if "/by-name/" in path:
        return "alias"
    if "rotated-from/" in path:
        return "record"
    return "key"


class RecordingEmulator(Emulator):
    """The emulator, logging each request's operation and the body members that tell it apart.

    It logs into the same list as :class:`StoreLog`, so the list holds every call in the order
    it was made (calls a flow makes at once, in the order they happened to start).
    """

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def handle(self, path: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        operation = path.split("?", 1)[0].removeprefix("/v2/")
        label = f"unkey {operation}"
        if operation == "keys.updateKey":
            try:
                members = sorted(k for k in json.loads(body) if k != "keyId")
            except ValueError:
                members = ["?"]
            label += f"({','.join(members)})"
        self.log.append(label)
        return super().handle(path, headers, body)


class StoreLog:
    """Labels every HTTP round trip a store makes (hvac's adapter, botocore's event hooks)."""

    def __init__(self, store: SecretStore, log: list[str]) -> None:
        self.log = log
        if isinstance(store, VaultStore):
            adapter = store.client.adapter
            inner: Callable[..., Any] = adapter.request

            def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
                self.log.append(_vault_label(method, url, kwargs.get("json")))
                return inner(method, url, *args, **kwargs)

            adapter.request = request
        else:
            store.client.meta.events.register("before-call.secrets-manager", self._aws)

    def _aws(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:
        # ``params`` is the request as it will be sent: the JSON body names the secret.
        try:
            body = json.loads(params.get("body") or b"{}")
        except ValueError:
            body = {}
        name = str(body.get("SecretId") or body.get("Name") or "")
        self.log.append(f"aws {model.name} {_kind(name)}")


def _vault_label(method: str, url: str, body: object) -> str:
    path = url.split("?", 1)[0].removeprefix("/v1/")
    if path.startswith("sys/internal/ui/mounts/"):
        return "vault preflight read mount"
    if path == "sys/capabilities-self":
        return "vault preflight capabilities-self"
    part = path.split("/", 2)
    if len(part) < 3 or part[1] not in ("data", "metadata"):
        return f"vault {method} {path}"
    what = "read" if method.upper() == "GET" else "write"
    label = f"vault {what} {part[1]} {_kind(part[2])}"
    if what == "write" and part[1] == "data":
        options = body.get("options", {}) if isinstance(body, dict) else {}
        cas = options.get("cas") if isinstance(options, dict) else None
        label += "" if cas is None else (" cas=0" if cas == 0 else " cas=N")
    return label


def _flows(unkey: UnkeyClient, store: SecretStore, api_id: str) -> dict[str, Callable[[], object]]:
    provision(unkey, store, api_id, alias="svc", mode="fast")
    aliases = iter(range(1_000_000))

    def capture_new() -> object:
        issued = unkey.create_key(api_id)
        return capture(
            store, api_id=api_id, key_id=issued.key_id, key=issued.secret,
            alias=f"captured-{next(aliases)}", unkey=unkey,
        )  # fmt: skip

    return {
        "provision safe": lambda: provision(unkey, store, api_id, mode="safe"),
        "provision fast": lambda: provision(unkey, store, api_id, mode="fast"),
        "rotate by alias": lambda: rotate(unkey, store, api_id, alias="svc", grace_period=GRACE),
        "capture": capture_new,
    }


def _measure(
    action: Callable[[], object], emulator: RecordingEmulator, log: list[str]
) -> tuple[list[str], int]:
    """The calls one run of ``action`` makes, in order, and the emulator's count of them."""
    action()  # warm up
    runs: list[list[str]] = []
    unkey_counts: list[int] = []
    for _ in range(REPEATS):
        before = emulator.calls.total()
        log.clear()
        action()
        unkey_counts.append(emulator.calls.total() - before)
        runs.append(list(log))
    # Calls made at once may start in either order: the runs must make the same calls.
    if any(sorted(run) != sorted(runs[0]) for run in runs) or len(set(unkey_counts)) > 1:
        print(f"  (the {REPEATS} runs made different calls: {runs})")
    return runs[0], unkey_counts[0]


def _beyond(calls: list[str], floor: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The calls beyond the floor, in the order made, and the floor's calls that were not made."""
    left = Counter(floor)
    extra = []
    for call in calls:
        if left[call] > 0:
            left[call] -= 1
        else:
            extra.append(call)
    return extra, list((+left).elements())


def _in_order(calls: list[str], floor: tuple[str, ...]) -> str:
    left = Counter(floor)
    marked = []
    for call in calls:
        if left[call] > 0:
            left[call] -= 1
            marked.append(call)
        else:
            marked.append("+" + call)
    return ", ".join(marked)


def _first_use(make: Callable[[], SecretStore], api_id: str) -> list[tuple[str, list[str]]]:
    """What a new store object's check_writable calls cost: without an alias, then with one."""
    store = make()
    log: list[str] = []
    StoreLog(store, log)
    paid = []
    for alias in (None, "svc"):
        log.clear()
        store.check_writable(api_id=api_id, alias=alias)
        when = "first with an alias, after one without" if alias else "first, without an alias"
        paid.append((when, list(log)))
    return paid


def main() -> int:
    """Print the table; always succeeds (a benchmark reports, it does not judge)."""
    log: list[str] = []
    emulator = RecordingEmulator(log)
    with (
        OpenBaoServer() as bao,
        MotoServer() as moto,
        EmulatorServer(emulator) as server,
        UnkeyClient(server.root_key, base_url=server.url) as unkey,
    ):
        makers: dict[str, Callable[[], SecretStore]] = {
            "vault": lambda: VaultStore(bao.client()),
            "aws": lambda: SecretsManagerStore(moto.client("secretsmanager")),
        }
        print(
            f"{'flow':<16} {'store':>5} | {'Unkey':>5} {'store':>5} {'total':>5} | "
            f"{'floor':>5} {'extra':>5}   [calls per flow, warm store object]",
            flush=True,
        )
        details: list[str] = []
        first: list[str] = []
        for name, make in makers.items():
            api_id = emulator.create_api(f"round-trips-{name}")
            for when, calls in _first_use(make, api_id):
                first.append(
                    f"first use of a store object ({name}): +{len(calls)} calls (check_writable "
                    f"{when}): " + (", ".join(calls) or "none")
                )
            store = make()
            StoreLog(store, log)
            for flow, action in _flows(unkey, store, api_id).items():
                calls, unkey_calls = _measure(action, emulator, log)
                logged = sum(1 for c in calls if c.startswith("unkey "))
                if logged != unkey_calls:
                    print(f"  (the emulator counted {unkey_calls} Unkey calls, {logged} logged)")
                floor = FLOORS[(flow, name)]
                extra, missing = _beyond(calls, floor)
                print(
                    f"{flow:<16} {name:>5} | {logged:>5} {len(calls) - logged:>5} "
                    f"{len(calls):>5} | {len(floor):>5} {len(extra):>5}",
                    flush=True,
                )
                details.append(
                    f"{flow} / {name}\n"
                    f"  floor ({len(floor)}): {', '.join(floor)}\n"
                    f"  beyond the floor ({len(extra)}): {', '.join(extra) or 'nothing'}"
                    + (f"\n  FLOOR CALLS NOT MADE: {', '.join(missing)}" if missing else "")
                    + (
                        "\n  in order (+ beyond the floor): " + _in_order(calls, floor)
                        if extra
                        else ""
                    )
                )
        print("\n".join(first))
        print("\n".join(details))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
