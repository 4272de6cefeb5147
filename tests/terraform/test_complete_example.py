"""terraform/examples/complete applied to moto server, rotated by the real handler, then destroyed.

The example (both modules, two keys) is applied with the aws provider's endpoints pointed at the
session's in-process moto server. moto cannot run a Lambda without docker, so its RotateSecret
is replaced by one that does what AWS does before invoking the function and records the event
(:mod:`._moto_rotation`); the test then plays Lambda: it builds the handler's rotator from the
environment Terraform gave the function (root key read from the secret Terraform made, Unkey
being the emulator) and runs the four steps with the recorded token. The tests run in file
order and share one deployment; the last one destroys it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.functional._cli_harness import aws_env
from tests.functional._rotation_harness import STEPS
from tests.security._canary import needles
from unkey_secrets import UnkeyClient
from unkey_secrets._payload import parse_key_json
from unkey_secrets.aws_lambda import RuntimeConfig, build_rotator
from unkey_secrets.config import KeyReader
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer

from ._moto_events import deliver_to_sns
from ._moto_rotation import Invocation, RotateSecretRecorder
from ._terraform import ROOT, Terraform, moto_provider

# One worker runs the whole file under `--dist loadgroup`: its tests share one terraform run
# (a module-scoped fixture), which a second worker would otherwise run again.
pytestmark = [pytest.mark.terraform, pytest.mark.xdist_group("terraform-complete-example")]

ACCOUNT = "123456789012"
HANDLER = "unkey_secrets.aws_lambda.handler"
RETENTION_DAYS = 30
GRACE_MS = 86_400_000
ALERT_EMAIL = "rotation-alerts@example.com"
#: The example's function timeout (rotation-lambda's default) and the alerts module's defaults.
TIMEOUT_SECONDS = 60
KEY_AGE_MARGIN_SECONDS = 2 * 86400


@dataclass
class Deployment:
    tf: Terraform
    workdir: Path
    moto: MotoServer
    unkey: EmulatorServer
    recorder: RotateSecretRecorder
    prefix: str
    api_ids: dict[str, str]
    root_key: str
    outputs: dict[str, Any]
    #: Everything terraform printed: hunted for keys like the state.
    printed: list[str] = field(default_factory=list)
    destroyed: bool = False

    def output(self, name: str) -> Any:
        return self.outputs[name]["value"]

    @property
    def alias_template(self) -> str:
        """The readers' default alias template, under this run's prefix instead of unkey/."""
        return f"{self.prefix}/{{api_id}}/by-name/{{alias}}"

    def client(self, service: str) -> Any:
        return self.moto.client(service)

    def run(self, *args: str) -> str:
        done = self.tf.run([*args, "-no-color"], self.workdir)
        self.printed += [done.stdout, done.stderr]
        return done.stdout


def _build_package(target: Path) -> Path:
    """What `make lambda-zip` builds, with the same script, for this interpreter."""
    spec = importlib.util.spec_from_file_location(
        "_build_lambda_zip", ROOT / "scripts" / "build_lambda_zip.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(target)
    return target


@pytest.fixture(scope="module")
def deployment(
    terraform: Terraform,
    tf_tree: Path,
    moto_server: MotoServer,
    unkey_emulator_server: EmulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    workdir = tf_tree / "examples" / "complete"
    scratch = tmp_path_factory.mktemp("complete")
    package = _build_package(scratch / "lambda.zip")
    emulator = unkey_emulator_server.emulator
    api_ids = {"billing": emulator.create_api("billing"), "search": emulator.create_api("search")}
    prefix = "tf" + uuid.uuid4().hex[:8]
    (workdir / "moto_override.tf").write_text(moto_provider(moto_server.url))
    variables = {
        "region": moto_server.region,
        "name_prefix": prefix,
        "alias_template": f"{prefix}/{{api_id}}/by-name/{{alias}}",
        "package_path": str(package),
        "unkey_base_url": unkey_emulator_server.url,
        "keys": {
            "billing": {"api_id": api_ids["billing"], "automatically_after_days": 30},
            "search": {"api_id": api_ids["search"], "schedule_expression": "rate(10 days)"},
        },
        "recovery_window_in_days": 0,
        "alert_email": ALERT_EMAIL,
    }
    (workdir / "test.auto.tfvars.json").write_text(json.dumps(variables))
    with pytest.MonkeyPatch.context() as patch:
        recorder = RotateSecretRecorder(patch).install()
        deliver_to_sns(patch)
        deployment = Deployment(
            tf=terraform,
            workdir=workdir,
            moto=moto_server,
            unkey=unkey_emulator_server,
            recorder=recorder,
            prefix=prefix,
            api_ids=api_ids,
            root_key=emulator.add_root_key(["*"]),
            outputs={},
        )
        try:
            deployment.run("apply", "-auto-approve", "-input=false")
            deployment.outputs = json.loads(deployment.run("output", "-json"))
            yield deployment
        finally:
            if not deployment.destroyed:
                deployment.run("destroy", "-auto-approve", "-input=false")


@dataclass
class Rotation:
    invocation: Invocation
    results: list[dict[str, str | None]]


@dataclass
class Rotated:
    deployment: Deployment
    #: key name => [the bootstrap, a scheduled rotation]
    rotations: dict[str, list[Rotation]]
    #: `terraform plan -detailed-exitcode` once both keys were rotated twice.
    plan: subprocess.CompletedProcess[str]


def _run_steps(deployment: Deployment, invocation: Invocation) -> Rotation:
    """Play Lambda: the function's own environment, the four steps with the recorded token."""
    lam = deployment.client("lambda")
    config = lam.get_function_configuration(FunctionName=invocation.function_arn)
    rotator = build_rotator(
        RuntimeConfig.from_environ(config["Environment"]["Variables"]),
        secrets_manager=deployment.client("secretsmanager"),
    )
    try:
        event = {"SecretId": invocation.secret_arn, "ClientRequestToken": invocation.token}
        results = [rotator.handle({**event, "Step": step}) for step in STEPS]
    finally:
        rotator.unkey.close()
    return Rotation(invocation, results)


@pytest.fixture(scope="module")
def rotated(deployment: Deployment) -> Rotated:
    """Both keys' first rotation (apply started it), then a second one as the schedule would."""
    sm = deployment.client("secretsmanager")
    # The operator's one manual step: the root key goes into the secret Terraform made.
    sm.put_secret_value(
        SecretId=deployment.output("root_key_secret_arn"), SecretString=deployment.root_key
    )
    by_secret = {arn: name for name, arn in deployment.output("secret_arns").items()}
    rotations: dict[str, list[Rotation]] = {name: [] for name in by_secret.values()}
    started = list(deployment.recorder.invocations)
    for invocation in started:
        rotations[by_secret[invocation.secret_arn]].append(_run_steps(deployment, invocation))
    for arn, name in by_secret.items():
        answer = sm.rotate_secret(SecretId=arn)
        invocation = deployment.recorder.invocations[-1]
        assert invocation.token == answer["VersionId"]
        rotations[name].append(_run_steps(deployment, invocation))
    plan = deployment.tf.run(
        ["plan", "-detailed-exitcode", "-input=false", "-no-color"], deployment.workdir, check=False
    )
    deployment.printed += [plan.stdout, plan.stderr]
    return Rotated(deployment, rotations, plan)


def _secret_versions(deployment: Deployment, arn: str) -> dict[str, str]:
    """Every version's value of a secret (moto's record: deprecated versions included)."""
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[ACCOUNT][deployment.moto.region].secrets[arn]
    return {v: d["secret_string"] for v, d in secret.versions.items() if "secret_string" in d}


def _statements(document: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    def listed(value: str | list[str]) -> tuple[str, ...]:
        return tuple(sorted([value] if isinstance(value, str) else value))

    found = {}
    for statement in document["Statement"]:
        assert statement["Sid"] not in found, "one statement per purpose"
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        found[statement["Sid"]] = (
            statement["Effect"],
            listed(statement["Action"]),
            listed(statement["Resource"]),
            statement.get("Condition"),
        )
    return found


# -- what apply made --------------------------------------------------------------------------


def test_apply_makes_the_function_with_the_documented_environment(deployment: Deployment) -> None:
    lam = deployment.client("lambda")
    config = lam.get_function_configuration(FunctionName=deployment.output("function_arn"))
    assert config["FunctionName"] == f"{deployment.prefix}-secrets-rotation"
    assert config["Handler"] == HANDLER
    # No runtime given: the one make lambda-zip recorded beside the package.
    assert config["Runtime"] == f"python{sys.version_info.major}.{sys.version_info.minor}"
    environment = config["Environment"]["Variables"]
    assert environment == {
        "UNKEY_ROOT_KEY_SECRET_ID": deployment.output("root_key_secret_arn"),
        "UNKEY_BASE_URL": deployment.unkey.url,
        "UNKEY_TIMEOUT": "10",
        "UNKEY_GRACE_PERIOD_SECONDS": "86400",
        "UNKEY_KEY_PREFIX": "live",
    }, "the root key by secret ARN, never as a value; every name the handler documents"
    RuntimeConfig.from_environ(environment)  # the handler accepts it

    logs = deployment.client("logs")
    group = logs.describe_log_groups(logGroupNamePrefix=deployment.output("log_group_name"))
    assert [g["retentionInDays"] for g in group["logGroups"]] == [RETENTION_DAYS]


def test_secrets_manager_may_invoke_the_function_from_this_account_only(
    deployment: Deployment,
) -> None:
    lam = deployment.client("lambda")
    policy = json.loads(lam.get_policy(FunctionName=deployment.output("function_arn"))["Policy"])
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Principal"] == {"Service": "secretsmanager.amazonaws.com"}
    assert statement["Resource"] == deployment.output("function_arn")
    assert statement["Condition"] == {"StringEquals": {"AWS:SourceAccount": ACCOUNT}}


def test_each_key_is_a_tagged_encrypted_secret_with_no_value_and_rotation_on(
    deployment: Deployment,
) -> None:
    sm = deployment.client("secretsmanager")
    arns = deployment.output("secret_arns")
    assert set(arns) == {"billing", "search"}
    rules = {
        "billing": {"AutomaticallyAfterDays": 30},
        "search": {"ScheduleExpression": "rate(10 days)"},
    }
    for name, arn in arns.items():
        described = sm.describe_secret(SecretId=arn)
        api_id = deployment.api_ids[name]
        assert described["Name"] == deployment.alias_template.format(api_id=api_id, alias=name)
        tags = {t["Key"]: t["Value"] for t in described["Tags"]}
        assert tags["managed-by"] == "unkey-secrets"
        assert tags["unkey-api-id"] == api_id
        assert described["KmsKeyId"] == deployment.output("kms_key_arn")
        assert described["RotationEnabled"] is True
        assert described["RotationLambdaARN"] == deployment.output("function_arn")
        assert {k: v for k, v in described["RotationRules"].items() if v} == rules[name]
        # Terraform wrote no value: only the version the rotation started, still empty.
        assert _secret_versions(deployment, arn) == {}
    # Apply started one rotation per secret, aimed at the module's function.
    started = deployment.recorder.invocations[:2]
    assert {i.secret_arn for i in started} == set(arns.values())
    assert {i.function_arn for i in started} == {deployment.output("function_arn")}


def test_the_role_grants_exactly_the_listed_actions_on_exactly_the_listed_resources(
    deployment: Deployment,
) -> None:
    iam = deployment.client("iam")
    role = deployment.output("role_name")
    function_arn = deployment.output("function_arn")
    region = deployment.moto.region
    names = [
        deployment.alias_template.format(api_id=deployment.api_ids[name], alias=name)
        for name in ("billing", "search")
    ]
    secrets = tuple(
        sorted(f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{n}-??????" for n in names)
    )
    for arn in deployment.output("secret_arns").values():
        assert any(arn[:-6] + "??????" == pattern for pattern in secrets), arn
    log_group = deployment.output("log_group_name")
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    [name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    assert _statements(document) == {
        "RotateTheManagedSecrets": (
            "Allow",
            (
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
            ),
            secrets,
            {"StringEquals": {"secretsmanager:resource/AllowRotationLambdaArn": function_arn}},
        ),
        "ReadTheUnkeyRootKey": (
            "Allow",
            ("secretsmanager:GetSecretValue",),
            (deployment.output("root_key_secret_arn"),),
            None,
        ),
        "UseTheSecretsKmsKeysThroughSecretsManager": (
            "Allow",
            ("kms:Decrypt", "kms:GenerateDataKey"),
            (deployment.output("kms_key_arn"),),
            {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
        ),
        "WriteItsOwnLogs": (
            "Allow",
            ("logs:CreateLogStream", "logs:PutLogEvents"),
            (f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{log_group}:*",),
            None,
        ),
    }
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"


# -- the handler on the secrets Terraform made ------------------------------------------------


def test_the_handler_bootstraps_then_rotates_each_secret_terraform_made(rotated: Rotated) -> None:
    deployment = rotated.deployment
    sm = deployment.client("secretsmanager")
    for name, arn in deployment.output("secret_arns").items():
        first, second = rotated.rotations[name]
        assert [r["outcome"] for r in first.results] == [
            "created-first-key",
            "enabled",
            "valid",
            "finished",
        ]
        assert [r["outcome"] for r in second.results] == [
            "rerolled",
            "nothing-to-do",
            "valid",
            "finished",
        ]
        stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
        assert stages[second.invocation.token] == ["AWSCURRENT"]
        assert stages[first.invocation.token] == ["AWSPREVIOUS"]
        current = parse_key_json(
            sm.get_secret_value(SecretId=arn)["SecretString"], store="aws", location=arn
        )
        original = parse_key_json(
            sm.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")["SecretString"],
            store="aws",
            location=arn,
        )
        assert current.api_id == original.api_id == deployment.api_ids[name], "the tag's API"
        assert original.secret.reveal().startswith("live_"), "the module's key_prefix"
        assert current.rerolled_from == original.key_id
        assert first.results[0]["key_id"] == original.key_id
        assert second.results[0]["key_id"] == current.key_id
        with UnkeyClient(deployment.root_key, base_url=deployment.unkey.url) as unkey:
            assert unkey.verify_key(current.secret).valid
            assert unkey.verify_key(original.secret).valid, "the original is in its grace"
        expires = deployment.unkey.emulator.key(original.key_id).expires
        assert expires is not None
        assert expires <= time.time() * 1000 + GRACE_MS, "the grace period Terraform set"


def test_a_reader_finds_each_rotated_key_by_its_alias(
    rotated: Rotated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each secret is named by the readers' alias template: KeyReader(api_id, alias) reads the
    key the function rotated, given the same template (UNKEY_SECRETS_AWS_ALIAS_TEMPLATE; the
    default one but for this run's prefix)."""
    deployment = rotated.deployment
    sm = deployment.client("secretsmanager")
    # The reader an app builds from its environment: moto's endpoint, and the template.
    for name, value in aws_env(deployment.moto).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UNKEY_SECRETS_AWS_ALIAS_TEMPLATE", deployment.alias_template)
    reader = KeyReader.secrets_manager()
    for name, arn in deployment.output("secret_arns").items():
        api_id = deployment.api_ids[name]
        assert deployment.output("secret_names")[name] == deployment.alias_template.format(
            api_id=api_id, alias=name
        )
        current = parse_key_json(
            sm.get_secret_value(SecretId=arn)["SecretString"], store="aws", location=arn
        )
        assert reader.key(api_id=api_id, alias=name).info().key_id == current.key_id


def test_a_plan_after_the_rotations_shows_no_change(rotated: Rotated) -> None:
    plan = rotated.plan
    assert plan.returncode == 0, (
        f"plan wants changes after the rotations:\n{plan.stdout}{plan.stderr}"
    )
    assert "No changes." in plan.stdout


def test_state_plan_and_output_hold_no_key(rotated: Rotated) -> None:
    deployment = rotated.deployment
    hunted: dict[str, list[str]] = {"the root key": needles(deployment.root_key)}
    for arn in deployment.output("secret_arns").values():
        for version, text in _secret_versions(deployment, arn).items():
            key = parse_key_json(text, store="aws", location=arn).secret.reveal()
            hunted[f"key of version {version}"] = needles(key)
    assert len(hunted) == 1 + 4, "two keys per secret were issued and stored"
    state = deployment.run("show", "-json")
    resources = json.loads(state)["values"]["root_module"]
    types = {r["type"] for m in resources.get("child_modules", []) for r in m["resources"]}
    types |= {r["type"] for r in resources.get("resources", [])}
    assert "aws_secretsmanager_secret_version" not in types
    assert "aws_secretsmanager_secret_rotation" in types
    raw_state = (deployment.workdir / "terraform.tfstate").read_text()
    plan = rotated.plan.stdout + rotated.plan.stderr
    channels = {"show -json": state, "terraform.tfstate": raw_state, "plan": plan}
    channels["everything terraform printed"] = "\n".join(deployment.printed)
    leaks = [
        f"{what} in {channel}"
        for channel, text in channels.items()
        for what, fragments in hunted.items()
        if any(fragment in text for fragment in fragments)
    ]
    assert leaks == []
    assert "SecretString" not in raw_state
    assert '"secret_string"' not in raw_state


# -- alerts: rules, topic, alarms, dashboard ---------------------------------------------------


def _rotation_event(name: str, secret_arn: str, region: str, error: str | None = None) -> Any:
    """A Secrets Manager rotation event as EventBridge gets it from CloudTrail.

    The shape of a real RotationFailed event: a service event ("AWS Service Event via
    CloudTrail"), the secret's full ARN in detail.additionalEventData.SecretId, the failure's
    reason in detail.errorMessage.
    """
    detail: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"},
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": "secretsmanager.amazonaws.com",
        "userAgent": "secretsmanager.amazonaws.com",
        "requestParameters": None,
        "responseElements": None,
        "additionalEventData": {"SecretId": secret_arn},
        "requestID": f"Rotation-{secret_arn}-{uuid.uuid4().hex[:12]}",
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsServiceEvent",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    if error is not None:
        detail["errorMessage"] = error
    return {
        "Source": "aws.secretsmanager",
        "DetailType": "AWS Service Event via CloudTrail",
        "Detail": json.dumps(detail),
    }


def _rotate_secret_call(secret_arn: str, region: str) -> Any:
    """The "AWS API Call via CloudTrail" event of a RotateSecret call on the secret."""
    detail = {
        "eventVersion": "1.08",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "RotateSecret",
        "awsRegion": region,
        "requestParameters": {"secretId": secret_arn, "rotateImmediately": True},
        "responseElements": {"arn": secret_arn},
        "eventID": str(uuid.uuid4()),
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    }
    return {
        "Source": "aws.secretsmanager",
        "DetailType": "AWS API Call via CloudTrail",
        "Detail": json.dumps(detail),
    }


def _event_id(entry: Any) -> str:
    return str(json.loads(entry["Detail"])["eventID"])


def _drain(sqs: Any, queue_url: str) -> set[str]:
    """The detail.eventID of every event delivered to the queue."""
    found: set[str] = set()
    for _ in range(100):  # bounded: a few events per test
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        messages = answer.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.add(json.loads(message["Body"])["detail"]["eventID"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    raise AssertionError(f"{queue_url} never ran dry")


def test_the_rules_match_a_failure_of_our_secrets_and_nothing_else(deployment: Deployment) -> None:
    """Sample events go through moto's EventBridge and each rule's targets, as deployed.

    moto does not implement TestEventPattern, but PutEvents matches every rule's stored pattern
    and delivers what matches. The failure rule's own target, the topic, is read through a
    queue the test subscribes to it; the success rule's, the event log, is shared with the
    failure rule, so the success rule gets a queue of the test's as a second target. Both are
    removed afterwards.
    """
    events, sns, sqs, logs = (deployment.client(s) for s in ("events", "sns", "sqs", "logs"))
    region = deployment.moto.region
    arns = deployment.output("secret_arns")
    rules = deployment.output("alert_rule_names")
    [succeeded_rule] = rules["succeeded"]
    topic = deployment.output("alerts_topic_arn")
    # A secret whose name starts with ours and a hyphen (what a prefix match would catch), and
    # one of another application altogether.
    billing = arns["billing"]
    lookalike = f"{billing[:-7]}-old-AbCdEf"
    stranger = f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:payments/db-password-Zz9Yx8"
    samples = {
        "failed billing": _rotation_event(
            "RotationFailed", billing, region, "Error when executing lambda during createSecret"
        ),
        "failed search": _rotation_event("RotationFailed", arns["search"], region, "testSecret"),
        "abandoned billing": _rotation_event("RotationAbandoned", billing, region),
        "test rotation failed search": _rotation_event(
            "TestRotationFailed", arns["search"], region, "testSecret"
        ),
        "succeeded billing": _rotation_event("RotationSucceeded", billing, region),
        "succeeded search": _rotation_event("RotationSucceeded", arns["search"], region),
        "started billing": _rotation_event("RotationStarted", billing, region),
        "RotateSecret call on billing": _rotate_secret_call(billing, region),
        "failed lookalike": _rotation_event("RotationFailed", lookalike, region, "x"),
        "failed stranger": _rotation_event("RotationFailed", stranger, region, "x"),
        "succeeded stranger": _rotation_event("RotationSucceeded", stranger, region),
    }
    ids = {name: _event_id(entry) for name, entry in samples.items()}

    def queue(kind: str) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=f"{deployment.prefix}-{kind}")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, attributes["Attributes"]["QueueArn"]

    (paged, paged_arn), (charted, charted_arn) = queue("paged"), queue("charted")
    subscription = sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=paged_arn,
        Attributes={"RawMessageDelivery": "true"},
    )["SubscriptionArn"]
    try:
        target = {"Id": "test-queue", "Arn": charted_arn}
        assert events.put_targets(Rule=succeeded_rule, Targets=[target])["FailedEntryCount"] == 0
        entries = list(samples.values())
        for start in range(0, len(entries), 10):  # PutEvents takes 10 at a time
            answer = events.put_events(Entries=entries[start : start + 10])
            assert answer["FailedEntryCount"] == 0, answer
        delivered = {"topic": _drain(sqs, paged), "success rule": _drain(sqs, charted)}
    finally:
        events.remove_targets(Rule=succeeded_rule, Ids=["test-queue"])
        sns.unsubscribe(SubscriptionArn=subscription)
        sqs.delete_queue(QueueUrl=paged)
        sqs.delete_queue(QueueUrl=charted)

    def named(found: set[str]) -> set[str]:
        return {name for name, event_id in ids.items() if event_id in found}

    failures = {
        "failed billing",
        "failed search",
        "abandoned billing",
        "test rotation failed search",
    }
    successes = {"succeeded billing", "succeeded search"}
    assert named(delivered["topic"]) == failures
    assert named(delivered["success rule"]) == successes

    # The event log got both kinds, once each (no event matched both rules), and nothing else.
    group = deployment.output("event_log_group_name")
    logged = [
        json.loads(e["message"])["detail"]["eventID"]
        for e in logs.filter_log_events(logGroupName=group)["events"]
    ]
    assert sorted(named(set(logged))) == sorted(failures | successes)
    assert len(logged) == len(failures | successes)


def test_failures_go_to_the_topic_which_admits_only_these_rules_and_alarms(
    deployment: Deployment,
) -> None:
    events, sns = deployment.client("events"), deployment.client("sns")
    topic = deployment.output("alerts_topic_arn")
    assert (
        topic
        == f"arn:aws:sns:{deployment.moto.region}:{ACCOUNT}:{deployment.prefix}-rotation-alerts"
    )
    rules = deployment.output("alert_rule_names")
    [failed_rule] = rules["failed"]
    [succeeded_rule] = rules["succeeded"]
    group = deployment.output("event_log_group_name")
    log_arn = f"arn:aws:logs:{deployment.moto.region}:{ACCOUNT}:log-group:{group}"

    def targets(rule: str) -> dict[str, str]:
        listed = events.list_targets_by_rule(Rule=rule)["Targets"]
        return {t["Id"]: t["Arn"] for t in listed}

    assert targets(failed_rule) == {"sns": topic, "event-log": log_arn}
    assert targets(succeeded_rule) == {"event-log": log_arn}, (
        "successes feed dashboards, not pagers"
    )
    # Only the rule that sends to the topic may publish to it.
    failed_rule_arn = events.describe_rule(Name=failed_rule)["Arn"]

    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert set(by_sid) == {
        "TheAccountManagesTheTopic",
        "EventBridgePublishesRotationEvents",
        "CloudWatchPublishesRotationAlarms",
    }
    eventbridge = by_sid["EventBridgePublishesRotationEvents"]
    assert eventbridge["Principal"] == {"Service": "events.amazonaws.com"}
    assert eventbridge["Action"] == "sns:Publish"
    assert eventbridge["Resource"] == topic
    assert eventbridge["Condition"] == {"ArnEquals": {"aws:SourceArn": failed_rule_arn}}
    cloudwatch = by_sid["CloudWatchPublishesRotationAlarms"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert cloudwatch["Condition"] == {
        "ArnLike": {
            "aws:SourceArn": f"arn:aws:cloudwatch:{deployment.moto.region}:{ACCOUNT}:alarm:"
            f"{deployment.prefix}-*"
        },
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
    }
    owner = by_sid["TheAccountManagesTheTopic"]
    assert owner["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}

    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", ALERT_EMAIL)]


def test_the_alarms_watch_the_function_and_each_keys_age_with_the_documented_thresholds(
    deployment: Deployment,
) -> None:
    cloudwatch = deployment.client("cloudwatch")
    prefix = deployment.prefix
    topic = deployment.output("alerts_topic_arn")
    function = f"{prefix}-secrets-rotation"
    arns = deployment.output("secret_arns")
    names = deployment.output("alarm_names")
    assert names == {
        "errors": f"{prefix}-rotation-errors",
        "throttles": f"{prefix}-rotation-throttles",
        "duration": f"{prefix}-rotation-duration",
        "key-age-billing": f"{prefix}-key-age-billing",
        "key-age-search": f"{prefix}-key-age-search",
    }
    found = {
        a["AlarmName"]: a
        for a in cloudwatch.describe_alarms(AlarmNamePrefix=f"{prefix}-")["MetricAlarms"]
    }
    assert set(found) == set(names.values())

    def shape(alarm: Any) -> tuple[Any, ...]:
        return (
            alarm["Namespace"],
            alarm["MetricName"],
            {d["Name"]: d["Value"] for d in alarm["Dimensions"]},
            alarm["Statistic"],
            alarm["ComparisonOperator"],
            alarm["Threshold"],
            alarm["Period"],
            alarm["EvaluationPeriods"],
            alarm["TreatMissingData"],
        )

    function_dims = {"FunctionName": function}
    ge, gt = "GreaterThanOrEqualToThreshold", "GreaterThanThreshold"
    expected = {
        "errors": ("AWS/Lambda", "Errors", function_dims, "Sum", ge, 1.0, 300, 1, "notBreaching"),
        "throttles": (
            "AWS/Lambda",
            "Throttles",
            function_dims,
            "Sum",
            ge,
            1.0,
            300,
            1,
            "notBreaching",
        ),
        # 80 % of the 60 s timeout, in milliseconds.
        "duration": (
            "AWS/Lambda",
            "Duration",
            function_dims,
            "Maximum",
            gt,
            48_000.0,
            300,
            1,
            "notBreaching",
        ),
        # The schedule (30 days; rate(10 days)) plus the two days' margin, in seconds, on the
        # metric the function publishes: UnkeySecrets/CurrentKeyAgeSeconds by SecretId (ARN).
        "key-age-billing": (
            "UnkeySecrets",
            "CurrentKeyAgeSeconds",
            {"SecretId": arns["billing"]},
            "Maximum",
            gt,
            float(30 * 86400 + KEY_AGE_MARGIN_SECONDS),
            3600,
            1,
            "notBreaching",
        ),
        "key-age-search": (
            "UnkeySecrets",
            "CurrentKeyAgeSeconds",
            {"SecretId": arns["search"]},
            "Maximum",
            gt,
            float(10 * 86400 + KEY_AGE_MARGIN_SECONDS),
            3600,
            1,
            "notBreaching",
        ),
    }
    assert expected["duration"][5] == TIMEOUT_SECONDS * 1000 * 0.8
    for kind, shape_expected in expected.items():
        alarm = found[names[kind]]
        assert shape(alarm) == shape_expected, kind
        assert alarm["AlarmActions"] == [topic], kind
        assert alarm["OKActions"] == [topic], kind
        assert alarm["ActionsEnabled"] is True, kind
        assert "Unit" not in alarm, "a unit would make the alarm blind to data published without"


def test_the_dashboard_shows_the_rules_the_function_the_key_ages_and_the_event_log(
    deployment: Deployment,
) -> None:
    cloudwatch = deployment.client("cloudwatch")
    name = deployment.output("dashboard_name")
    assert name == f"{deployment.prefix}-rotation"
    body = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
    widgets = body["widgets"]
    metrics = [
        tuple(m[:4]) for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"]
    ]
    rules = deployment.output("alert_rule_names")
    function = deployment.output("function_arn").rsplit(":", 1)[1]
    arns = deployment.output("secret_arns")
    assert ("AWS/Events", "TriggeredRules", "RuleName", rules["failed"][0]) in metrics
    assert ("AWS/Events", "TriggeredRules", "RuleName", rules["succeeded"][0]) in metrics
    for metric in ("Invocations", "Errors", "Throttles", "Duration"):
        assert ("AWS/Lambda", metric, "FunctionName", function) in metrics
    for arn in arns.values():
        assert ("UnkeySecrets", "CurrentKeyAgeSeconds", "SecretId", arn) in metrics
    expressions = [
        m[0]["expression"]
        for w in widgets
        if w["type"] == "metric"
        for m in w["properties"]["metrics"]
        if isinstance(m[0], dict)
    ]
    assert expressions == [
        'SEARCH(\'{UnkeySecrets,SecretId,Step,Outcome} MetricName="StepInvocations" '
        "Outcome=\"failed\"', 'Sum', 3600)",
        "SEARCH('{UnkeySecrets,SecretId} MetricName=\"KeysSwept\"', 'Sum', 3600)",
    ]
    [log_widget] = [w for w in widgets if w["type"] == "log"]
    assert (
        f"SOURCE '{deployment.output('event_log_group_name')}'" in log_widget["properties"]["query"]
    )
    overdue = {
        a["label"]: a["value"]
        for w in widgets
        for a in w["properties"].get("annotations", {}).get("horizontal", [])
    }
    assert overdue["billing overdue"] == 30 * 86400 + KEY_AGE_MARGIN_SECONDS


# -- and gone ---------------------------------------------------------------------------------


def test_destroy_removes_everything(deployment: Deployment) -> None:
    arns = deployment.output("secret_arns")
    root_key_arn = deployment.output("root_key_secret_arn")
    topic = deployment.output("alerts_topic_arn")
    rules = [r for names in deployment.output("alert_rule_names").values() for r in names]
    alarms = list(deployment.output("alarm_names").values())
    assert len(rules) == 2
    assert len(alarms) == 5
    deployment.run("destroy", "-auto-approve", "-input=false")
    deployment.destroyed = True
    state = json.loads((deployment.workdir / "terraform.tfstate").read_text())
    assert state["resources"] == []
    sm = deployment.client("secretsmanager")
    listed = {s["ARN"] for s in sm.list_secrets()["SecretList"]}
    assert listed.isdisjoint({*arns.values(), root_key_arn})
    lam = deployment.client("lambda")
    assert all(
        f["FunctionName"] != f"{deployment.prefix}-secrets-rotation"
        for f in lam.list_functions()["Functions"]
    )
    iam = deployment.client("iam")
    assert all(r["RoleName"] != deployment.output("role_name") for r in iam.list_roles()["Roles"])
    logs = deployment.client("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix=deployment.output("log_group_name"))
    assert groups["logGroups"] == []
    kms = deployment.client("kms")
    key = kms.describe_key(KeyId=deployment.output("kms_key_arn"))["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"
    events = deployment.client("events")
    assert not events.list_rules(NamePrefix=f"{deployment.prefix}-")["Rules"]
    sns = deployment.client("sns")
    assert topic not in {t["TopicArn"] for t in sns.list_topics()["Topics"]}
    assert all(s["TopicArn"] != topic for s in sns.list_subscriptions()["Subscriptions"])
    cloudwatch = deployment.client("cloudwatch")
    assert not cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]
    dashboards = cloudwatch.list_dashboards(DashboardNamePrefix=deployment.prefix)
    assert dashboards["DashboardEntries"] == []
    assert (
        logs.describe_log_groups(logGroupNamePrefix=f"/aws/events/{deployment.prefix}-")[
            "logGroups"
        ]
        == []
    )
    policies = logs.describe_resource_policies()["resourcePolicies"]
    assert all(not p["policyName"].startswith(f"{deployment.prefix}-") for p in policies)
