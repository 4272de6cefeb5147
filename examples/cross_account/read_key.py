"""Read an Unkey key kept in another AWS account's Secrets Manager, through a role there.

Two accounts, as the JSON files in this folder set them up (JSON holds no comments, so they
are described here):

* the **secrets account** (111111111111) keeps the keys, written by unkey-secrets under
  ``unkey/``, and a role ``unkey-secrets-reader`` for the app to assume:

  - ``reader_role_trust_policy.json`` is that role's trust policy: the app's role in the
    caller account may assume it, and only when it sends the agreed ExternalId (the
    ``sts:ExternalId`` condition; it is not a secret, it keeps another customer of the same
    caller from being let in as a confused deputy);
  - ``reader_role_permissions_policy.json`` is the role's permissions: GetSecretValue and
    DescribeSecret on the ``unkey/`` secrets of this account, and BatchGetSecretValue (which
    returns only the secrets GetSecretValue allows);
  - ``kms_key_policy.json`` is the policy of the customer managed KMS key the secrets are
    encrypted with: the role may Decrypt with it, and only through Secrets Manager for the
    ``unkey/`` secrets. The role lives in the secrets account, so the default
    ``aws/secretsmanager`` key would serve this pattern too; it cannot serve the other one
    (a resource policy on each secret letting the caller account read it directly), because
    the policy of an AWS managed key cannot be changed to let another account decrypt.
    A customer managed key works for both.

* the **caller account** (222222222222) runs the app as the role ``billing-service``, whose
  permissions include ``caller_policy.json``: sts:AssumeRole on the reader role, nothing more.

Run it where the app's credentials are (the default chain: an instance or task role, a
profile, web identity)::

    export UNKEY_SECRETS_AWS_ROLE_ARN=arn:aws:iam::111111111111:role/unkey-secrets-reader
    export UNKEY_SECRETS_AWS_EXTERNAL_ID=billing-service-7c1e
    export AWS_REGION=eu-west-1
    python examples/cross_account/read_key.py api_123 billing

The reader assumes the role with STS at its first read, signs every Secrets Manager request
with the role's temporary credentials and has botocore renew them before they expire
(``UNKEY_SECRETS_AWS_DURATION_SECONDS`` sets the session's length, 900-43200 seconds; the CLI
takes ``--role-arn``, ``--role-external-id``, ``--role-session-name`` and
``--duration-seconds``). ``AWS_ROLE_ARN`` is not read: botocore keeps it for the chain's own
web identity role. It prints the key_id, version, account and region read, never the key;
exit status 0 when the key was read.
"""

from __future__ import annotations

import sys

from unkey_secrets.config import KeyReader


def main(argv: list[str]) -> int:
    """Read the key behind alias ``argv[1]`` of API ``argv[0]`` through the role; 0 if read."""
    if len(argv) != 2:
        print("usage: read_key.py API_ID ALIAS", file=sys.stderr)
        return 2
    api_id, alias = argv
    # The store's settings come from the environment: the region, the role and its ExternalId.
    reader = KeyReader.secrets_manager(max_age=300)
    key = reader.key(api_id=api_id, alias=alias)
    info = key.info()
    account = info.location.split(":")[4]
    print(
        f"read {info.key_id} (version {info.version}) of {api_id} alias {alias} "
        f"from account {account} in {info.region}"
    )
    # The key itself, for the request it authorises; never printed or logged.
    headers = {"Authorization": f"Bearer {key.get().secret.reveal()}"}
    assert headers["Authorization"].startswith("Bearer ")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
