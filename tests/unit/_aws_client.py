"""A boto3 Secrets Manager client for Stubber tests: dummy credentials, no profile, no server."""

from __future__ import annotations

import os
from typing import Any

import boto3
import botocore.session


def make_client() -> Any:
    """Return a client that reads no AWS profile or config file and points at a closed port."""
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("credentials_file", os.devnull)
    session = boto3.session.Session(
        botocore_session=core,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return session.client("secretsmanager", endpoint_url="http://127.0.0.1:9")
