"""The main flows, run in a child process under strace by test_disk.py.

Logging goes to a DEBUG log file, as many deployment scripts configure it: the file is exactly
where an unguarded botocore body would land. The servers are the parent's, on loopback, named
in the environment. The canaries are printed to stdout (a pipe) at the end.

Last, the rotation Lambda's handler runs the four steps of a rotation the parent started
(``CANARY_ROTATION_ARN``, ``CANARY_ROTATION_TOKEN``), configured by the Lambda's own
environment variables; the parent reads the keys it stored back from moto afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import httpx
import hvac

from unkey_secrets import UnkeyClient, capture, provision, rotate
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore

from ._canary import Tap, new_canary


def main() -> None:
    """Provision, rotate, capture and read back through both stores."""
    logging.basicConfig(filename=sys.argv[1], level=logging.DEBUG)
    env = os.environ
    canaries: list[str] = []
    import boto3

    aws = SecretsManagerStore(
        boto3.client(
            "secretsmanager",
            endpoint_url=env["CANARY_MOTO_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    )
    vault = VaultStore(hvac.Client(url=env["CANARY_VAULT_URL"], token=env["CANARY_VAULT_TOKEN"]))
    with UnkeyClient(
        env["CANARY_UNKEY_ROOT_KEY"],
        base_url=env["CANARY_UNKEY_URL"],
        transport=Tap(httpx.HTTPTransport(), canaries),
    ) as unkey:
        for store, api_id in ((vault, env["CANARY_API_VAULT"]), (aws, env["CANARY_API_AWS"])):
            done = provision(unkey, store, api_id, alias="svc", prefix="canary")
            rotated = rotate(unkey, store, api_id, done.key_id, alias="svc")
            store.get(api_id=api_id, key_id=rotated.key_id)
            store.get_current(api_id=api_id, alias="svc")
            canary = new_canary()
            canaries.append(canary)
            answer = {"data": {"keyId": "key_" + os.urandom(6).hex(), "key": canary}}
            capture(store, answer, api_id=api_id)
    rotate_with_the_lambda(env["CANARY_ROTATION_ARN"], env["CANARY_ROTATION_TOKEN"])
    print(json.dumps(canaries))


def rotate_with_the_lambda(arn: str, token: str) -> None:
    """Invoke the handler for each step, as Secrets Manager would."""
    from unkey_secrets import aws_lambda

    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        aws_lambda.handler({"SecretId": arn, "ClientRequestToken": token, "Step": step}, None)


if __name__ == "__main__":
    main()
