"""Every Kubernetes manifest under examples/ validates, and the restart examples fit together.

Each YAML document is checked offline against the Kubernetes schemas (kubernetes-validate,
strict) or, for the operators' custom resources, the schemas derived from their CRDs in
tests/_k8s_manifests.py, for the oldest and the newest Kubernetes the examples promise. The
restart examples are then checked for what a schema cannot see: that the restart names the
Secret the pods read, that the pieces refer to each other by the right names, and that a
rotation reaches every pod well inside the grace period the rotation leaves the old key.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from tests._k8s_manifests import (
    KUBERNETES_VERSIONS,
    ManifestError,
    custom_resource_kinds,
    go_duration_seconds,
    load_documents,
    validate_document,
)
from unkey_secrets.cli import app as cli
from unkey_secrets.rotation.core import DEFAULT_GRACE_PERIOD

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
KUBERNETES = EXAMPLES / "kubernetes"
MANIFESTS = sorted([*EXAMPLES.rglob("*.yaml"), *EXAMPLES.rglob("*.yml")])
RELOADER = KUBERNETES / "reloader-external-secret.yaml"
VSO = KUBERNETES / "vault-secrets-operator.yaml"
AGENT_EXEC = KUBERNETES / "vault-agent-exec.yaml"
EXEC_HCL = EXAMPLES / "vault_agent" / "exec.hcl"


def by_kind(path: Path) -> dict[str, dict[str, Any]]:
    docs = list(load_documents(path))
    kinds = {doc["kind"]: doc for doc in docs}
    assert len(kinds) == len(docs), f"{path.name}: one document per kind"
    return kinds


def pod_reads(deployment: dict[str, Any]) -> set[tuple[str, str]]:
    """(Secret name, key) pairs the Deployment's containers take from Secrets."""
    pairs = set()
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                pairs.add((ref["name"], ref["key"]))
    return pairs


def grace_period_of_the_cronjob() -> float:
    """The --grace-period rotate-due-cronjob.yaml rotates with, in seconds."""
    cron = by_kind(KUBERNETES / "rotate-due-cronjob.yaml")["CronJob"]
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return float(cli.build_parser().parse_args(container["args"]).grace_period)


def hcl_setting(text: str, name: str) -> str:
    (value,) = re.findall(rf'^\s*{name}\s*=\s*"([^"]*)"', text, flags=re.MULTILINE)
    return str(value)


# -- every manifest validates ------------------------------------------------------------------


def test_the_examples_hold_manifests() -> None:
    names = {path.relative_to(EXAMPLES).as_posix() for path in MANIFESTS}
    assert {
        "kubernetes/rotate-due-cronjob.yaml",
        "kubernetes/reloader-external-secret.yaml",
        "kubernetes/vault-secrets-operator.yaml",
        "kubernetes/vault-agent-exec.yaml",
        "external_secrets/aws.yaml",
        "external_secrets/vault.yaml",
    } <= names


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.relative_to(EXAMPLES).as_posix())
def test_every_example_manifest_validates(path: Path, version: str) -> None:
    docs = list(load_documents(path))
    assert docs
    for doc in docs:
        validate_document(doc, source=path.name, version=version)


def test_every_custom_resource_kind_has_an_example() -> None:
    used = {(doc["apiVersion"], doc["kind"]) for path in MANIFESTS for doc in load_documents(path)}
    assert set(custom_resource_kinds()) <= used


# -- the validation refuses what the operators and the API server would -------------------------


def mutated(path: Path, kind: str, change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(by_kind(path)[kind])
    change(doc)
    return doc


MISTAKES = {
    # ESO stopped serving v1beta1 in 0.17: an apply answers "no matches for kind".
    "eso-v1beta1": (
        RELOADER,
        "ExternalSecret",
        lambda d: d.update(apiVersion="external-secrets.io/v1beta1"),
        "serves only external-secrets.io/v1",
    ),
    "eso-refresh-not-a-duration": (
        RELOADER,
        "ExternalSecret",
        lambda d: d["spec"].update(refreshInterval="5 minutes"),
        "spec.refreshInterval",
    ),
    "eso-secret-key-with-slash": (
        RELOADER,
        "ExternalSecret",
        lambda d: d["spec"]["data"][0].update(secretKey="unkey/key"),
        "spec.data.0.secretKey",
    ),
    "eso-misspelt-field": (
        RELOADER,
        "ExternalSecret",
        lambda d: d["spec"].update(refreshIntervall="5m"),
        "refreshIntervall",
    ),
    "eso-remote-ref-without-key": (
        RELOADER,
        "ExternalSecret",
        lambda d: d["spec"]["data"][0]["remoteRef"].pop("key"),
        "spec.data.0.remoteRef",
    ),
    "eso-store-with-two-providers": (
        RELOADER,
        "SecretStore",
        lambda d: d["spec"]["provider"].update(vault={"server": "https://vault:8200"}),
        "spec.provider",
    ),
    "vso-restart-kind": (
        VSO,
        "VaultStaticSecret",
        lambda d: d["spec"]["rolloutRestartTargets"][0].update(kind="Deploy"),
        "spec.rolloutRestartTargets.0.kind",
    ),
    "vso-refresh-after-with-days": (
        VSO,
        "VaultStaticSecret",
        lambda d: d["spec"].update(refreshAfter="1d"),
        "spec.refreshAfter",
    ),
    "vso-kv-type": (
        VSO,
        "VaultStaticSecret",
        lambda d: d["spec"].update(type="kv2"),
        "spec.type",
    ),
    "vso-esos-field-name": (
        VSO,
        "VaultStaticSecret",
        lambda d: d["spec"].update(refreshInterval="5m"),
        "refreshInterval",
    ),
    "vso-without-destination": (
        VSO,
        "VaultStaticSecret",
        lambda d: d["spec"].pop("destination"),
        "destination",
    ),
    "vso-auth-method": (
        VSO,
        "VaultAuth",
        lambda d: d["spec"].update(method="Kubernetes"),
        "spec.method",
    ),
    "vso-short-token": (
        VSO,
        "VaultAuth",
        lambda d: d["spec"]["kubernetes"].update(tokenExpirationSeconds=60),
        "spec.kubernetes.tokenExpirationSeconds",
    ),
    "custom-resource-metadata": (
        VSO,
        "VaultConnection",
        lambda d: d["metadata"].update(labels={"team": 7}),
        "metadata.labels.team",
    ),
    "deployment-annotation-not-a-string": (
        RELOADER,
        "Deployment",
        lambda d: d["metadata"]["annotations"].update({"reloader.stakater.com/auto": True}),
        "metadata.annotations",
    ),
    "deployment-misspelt-field": (
        AGENT_EXEC,
        "Deployment",
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(commands=["vault"]),
        "commands",
    ),
    "unknown-custom-resource": (
        VSO,
        "VaultStaticSecret",
        lambda d: d.update(apiVersion="secrets.hashicorp.com/v1"),
        "no schema for this custom resource",
    ),
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_a_mistake_in_an_example_is_refused(mistake: str, version: str) -> None:
    path, kind, change, where = MISTAKES[mistake]
    doc = mutated(path, kind, change)
    with pytest.raises(ManifestError) as caught:
        validate_document(doc, source=path.name, version=version)
    assert where in str(caught.value)
    assert str(caught.value).startswith(f"{path.name}: ")


def test_a_yaml_document_that_is_no_map_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- kind: Deployment\n")
    with pytest.raises(ManifestError, match="document 0 is a list"):
        list(load_documents(path))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300.0), ("1h30m", 5400.0), ("90s", 90.0), ("1.5h", 5400.0), ("0", 0.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1d", "5 m", "m5", "5m3"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        go_duration_seconds(text)


# -- 1. External Secrets Operator + Stakater Reloader --------------------------------------------


def test_reloader_restarts_the_deployment_that_reads_the_synced_secret() -> None:
    kinds = by_kind(RELOADER)
    external, deployment = kinds["ExternalSecret"], kinds["Deployment"]
    secret = external["spec"]["target"]["name"]
    # Reloader reads its annotations from the workload's own metadata, not the pod template's.
    annotations = deployment["metadata"]["annotations"]
    assert annotations["secret.reloader.stakater.com/reload"].split(",") == [secret]
    assert "annotations" not in deployment["spec"]["template"]["metadata"]
    # The pods read every member the ExternalSecret writes, from that Secret.
    written = {item["secretKey"] for item in external["spec"]["data"]}
    assert written == {"key", "key_id"}
    assert pod_reads(deployment) == {(secret, key) for key in written}
    assert external["spec"]["secretStoreRef"] == {
        "kind": "SecretStore",
        "name": kinds["SecretStore"]["metadata"]["name"],
    }
    # Periodic: the operator reads the alias again (OnChange/CreatedOnce never would).
    assert external["spec"]["refreshPolicy"] == "Periodic"
    # Every member comes from the alias, one read.
    assert {item["remoteRef"]["key"] for item in external["spec"]["data"]} == {
        "unkey/api_123/by-name/billing"
    }


def test_rolling_restarts_keep_every_pod_serving() -> None:
    for path in (RELOADER, VSO):
        strategy = by_kind(path)["Deployment"]["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate"
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, path.name


# -- 2. Vault Secrets Operator ---------------------------------------------------------------


def test_vso_restarts_the_deployment_that_reads_the_synced_secret() -> None:
    kinds = by_kind(VSO)
    static, deployment = kinds["VaultStaticSecret"], kinds["Deployment"]
    spec = static["spec"]
    assert spec["rolloutRestartTargets"] == [
        {"kind": "Deployment", "name": deployment["metadata"]["name"]}
    ]
    # Restart targets are ignored when the operator keeps no HMAC of the data.
    assert spec.get("hmacSecretData", True) is True
    secret = spec["destination"]["name"]
    assert spec["destination"]["create"] is True
    included = spec["destination"]["transformation"]["includes"]
    assert pod_reads(deployment) == {(secret, "key"), (secret, "key_id")}
    assert {re.sub(r"^\^|\$$", "", pattern) for pattern in included} == {"key", "key_id"}
    assert spec["destination"]["transformation"]["excludeRaw"] is True
    assert (spec["type"], spec["mount"], spec["path"]) == (
        "kv-v2",
        "secret",
        "unkey/api_123/by-name/billing",
    )


def test_vso_logs_in_as_the_service_account_in_the_file() -> None:
    kinds = by_kind(VSO)
    auth = kinds["VaultAuth"]
    assert kinds["VaultStaticSecret"]["spec"]["vaultAuthRef"] == auth["metadata"]["name"]
    assert auth["spec"]["vaultConnectionRef"] == kinds["VaultConnection"]["metadata"]["name"]
    assert auth["spec"]["method"] == "kubernetes"
    account = kinds["ServiceAccount"]["metadata"]["name"]
    assert auth["spec"]["kubernetes"]["serviceAccount"] == account
    assert kinds["VaultConnection"]["spec"]["address"].startswith("https://")
    # The app itself needs no Vault access.
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod


# -- 3. Vault Agent as the process supervisor ------------------------------------------------


def test_the_agent_pod_runs_the_exec_config_of_examples_vault_agent() -> None:
    kinds = by_kind(AGENT_EXEC)
    config = kinds["ConfigMap"]["data"]
    # One file, two places: the test that runs exec.hcl for real runs what the pod runs.
    assert config["exec.hcl"] == EXEC_HCL.read_text()
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = container["volumeMounts"]
    (volume,) = pod["volumes"]
    assert volume == {
        "name": mount["name"],
        "configMap": {"name": kinds["ConfigMap"]["metadata"]["name"]},
    }
    assert container["command"][:2] == ["vault", "agent"]
    configs = [arg.removeprefix("-config=") for arg in container["command"][2:]]
    assert configs == [f"{mount['mountPath']}/{name}" for name in ("auth.hcl", "exec.hcl")]
    assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
    auth = config["auth.hcl"]
    assert re.search(r'method\s+"kubernetes"', auth)
    assert hcl_setting(auth, "role") == "billing-api"
    assert "VAULT_ADDR" in {item["name"] for item in container["env"]}


def test_the_exec_config_restarts_the_app_on_every_change() -> None:
    text = EXEC_HCL.read_text()
    assert hcl_setting(text, "restart_on_secret_changes") == "always"
    assert hcl_setting(text, "restart_stop_signal") == "SIGTERM"
    # Both variables come from the alias, which holds the whole key: one read each render.
    paths = set(re.findall(r'secret \\"([^\\]+)\\"', text))
    assert paths == {"secret/data/unkey/api_123/by-name/billing"}
    assert re.findall(r'env_template "(\w+)"', text) == ["UNKEY_API_KEY", "UNKEY_KEY_ID"]
    # An outage keeps the app on its key (valid for the grace period) instead of stopping it.
    assert re.search(r"^\s*exit_on_retry_failure\s*=\s*false", text, flags=re.MULTILINE)


# -- the grace period outlives the time a rotation takes to reach every pod -------------------


def pickup_bounds() -> dict[str, float]:
    """Seconds from a rotation until every pod runs the new key, at worst, per example."""
    reloader = by_kind(RELOADER)
    vso = by_kind(VSO)
    return {
        # The operator's next read, then the whole rollout.
        RELOADER.name: go_duration_seconds(reloader["ExternalSecret"]["spec"]["refreshInterval"])
        + reloader["Deployment"]["spec"]["progressDeadlineSeconds"],
        VSO.name: go_duration_seconds(vso["VaultStaticSecret"]["spec"]["refreshAfter"])
        + vso["Deployment"]["spec"]["progressDeadlineSeconds"],
        # The agent's next read, then the app's own start (the pod's termination grace).
        AGENT_EXEC.name: go_duration_seconds(
            hcl_setting(EXEC_HCL.read_text(), "static_secret_render_interval")
        )
        + by_kind(AGENT_EXEC)["Deployment"]["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ],
    }


def test_every_pod_has_the_new_key_well_inside_the_grace_period() -> None:
    grace = grace_period_of_the_cronjob()
    assert grace == DEFAULT_GRACE_PERIOD.total_seconds()
    bounds = pickup_bounds()
    assert set(bounds) == {RELOADER.name, VSO.name, AGENT_EXEC.name}
    for name, seconds in bounds.items():
        # Half the grace period at most: a failed refresh or rollout has time to be retried.
        assert 0 < seconds <= grace / 2, f"{name}: {seconds} s against a grace of {grace} s"
    # As documented in docs/kubernetes.md.
    assert bounds == {
        RELOADER.name: 900.0,
        VSO.name: 900.0,
        AGENT_EXEC.name: 330.0,
    }
