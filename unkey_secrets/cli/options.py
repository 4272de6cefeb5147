"""Conventions shared by every command: global options, durations, settings flags, exit codes.

* Global options (``--json``, ``-v``, ``--store``, ``--audit-log`` and the settings flags) are
  accepted before the command and after it, as ``vault`` and ``aws`` accept theirs.
* Durations are whole seconds or ``30m``, ``24h``, ``90d``, ``2w``, or a sum such as ``1h30m``,
  at most 10 years, for every option that takes one.
* The identifiers a command takes (``--api-id``, ``--alias``, ``--key-id``, ``--external-id``...)
  are checked by :func:`check_inputs` before the command opens a store or an Unkey client, the
  error naming the flag, never the value.
* A command that rotates takes ``--grace-period`` and ``--allow-short-grace``
  (:func:`add_grace_options`), checked before anything is sent (:func:`grace_options`).
* The settings flags (``--vault-addr``, ``--vault-namespace``, ``--mount``, ``--region``,
  ``--profile``, ``--endpoint-url``, and the role to assume: ``--role-arn``,
  ``--role-external-id``, ``--role-session-name``, ``--duration-seconds``) win over the
  environment variable each one names: they
  are handed to the store's settings as overrides (see
  :func:`unkey_secrets.settings.load_settings`), and ``os.environ`` is never changed. An
  error about a value a flag gave names that flag (``invalid --role-external-id: ... give
  --role-arn too``), not the settings field or the variable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import InvalidInputError, UnkeySecretsError
from .._validate import validate_alias, validate_api_id, validate_external_id, validate_key_id
from ..rotation.core import DEFAULT_GRACE_PERIOD, MINIMUM_GRACE_PERIOD

__all__ = [
    "AUDIT_LOG_VARIABLE",
    "EXIT_FAILURE",
    "EXIT_FINDINGS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "GLOBAL_VALUE_OPTIONS",
    "MAX_ALIASES",
    "MAX_DURATION_SECONDS",
    "MAX_GRACE_SECONDS",
    "SETTINGS_FLAGS",
    "PartialFailure",
    "SettingsFlag",
    "add_api_id",
    "add_global_options",
    "add_grace_options",
    "aliases_from",
    "check_inputs",
    "closest_command",
    "duration",
    "exit_codes",
    "format_duration",
    "grace_options",
    "grace_period",
    "settings_overrides",
]

EXIT_OK = 0
#: A flow, store or Unkey error (what was undone is in the message), or an unexpected error.
EXIT_FAILURE = 1
#: Bad usage, invalid input or configuration: nothing was sent, or nothing could be.
EXIT_USAGE = 2
#: A check ran to the end and found problems (verify, reconcile, doctor, and list or verify
#: --expiring-within finding a key that ends within it).
EXIT_FINDINGS = 3
#: Some items of a command over many failed, the others were done (rotate-due, bulk).
EXIT_PARTIAL = 4
EXIT_INTERRUPTED = 130


class PartialFailure(UnkeySecretsError):
    """Some items failed and the others were done; exit code :data:`EXIT_PARTIAL`.

    A command over many items (``bulk``) may raise it after printing its per-item results:
    ``main`` prints ``error: <message>`` and exits 4.
    """


@dataclass(frozen=True)
class SettingsFlag:
    """A global option that sets one field of one store's settings for the run.

    ``store`` is the store's registered name, ``field`` the settings field it overrides (the
    store's ``from_settings`` takes it as a keyword), ``variable`` the environment variable
    it wins over, ``help`` the option's help.
    """

    store: str
    field: str
    variable: str
    help: str


#: flag -> what it overrides. Each wins over the environment, which it leaves unchanged.
SETTINGS_FLAGS: Mapping[str, SettingsFlag] = {
    "--vault-addr": SettingsFlag(
        "vault",
        "addr",
        "VAULT_ADDR",
        "Vault's address (overrides VAULT_ADDR; VAULT_AGENT_ADDR, when set, still wins: "
        "requests go to that agent or proxy, and a warning says so)",
    ),
    "--vault-namespace": SettingsFlag(
        "vault", "namespace", "VAULT_NAMESPACE", "Vault namespace (overrides VAULT_NAMESPACE)"
    ),
    "--mount": SettingsFlag(
        "vault",
        "mount",
        "UNKEY_SECRETS_VAULT_MOUNT",
        "Vault KV v2 mount (overrides UNKEY_SECRETS_VAULT_MOUNT; default secret)",
    ),
    "--region": SettingsFlag(
        "aws", "region", "AWS_REGION", "AWS region (overrides AWS_REGION and AWS_DEFAULT_REGION)"
    ),
    "--profile": SettingsFlag(
        "aws",
        "profile",
        "AWS_PROFILE",
        "AWS profile from the AWS config files (overrides AWS_PROFILE)",
    ),
    "--endpoint-url": SettingsFlag(
        "aws",
        "endpoint_url",
        "AWS_ENDPOINT_URL",
        "Secrets Manager endpoint (overrides AWS_ENDPOINT_URL)",
    ),
    # The role flags are named as `aws sts assume-role` names them, except the ExternalId:
    # provision's --external-id is the Unkey key's externalId.
    "--role-arn": SettingsFlag(
        "aws",
        "role_arn",
        "UNKEY_SECRETS_AWS_ROLE_ARN",
        "IAM role to assume for Secrets Manager, with the credential chain's credentials "
        "(overrides UNKEY_SECRETS_AWS_ROLE_ARN)",
    ),
    "--role-external-id": SettingsFlag(
        "aws",
        "external_id",
        "UNKEY_SECRETS_AWS_EXTERNAL_ID",
        "ExternalId the role's trust policy asks for (overrides UNKEY_SECRETS_AWS_EXTERNAL_ID; "
        "not provision's --external-id, the key's owner in Unkey)",
    ),
    "--role-session-name": SettingsFlag(
        "aws",
        "role_session_name",
        "UNKEY_SECRETS_AWS_ROLE_SESSION_NAME",
        "the role session's name in CloudTrail (overrides UNKEY_SECRETS_AWS_ROLE_SESSION_NAME; "
        "default unkey-secrets)",
    ),
    "--duration-seconds": SettingsFlag(
        "aws",
        "duration_seconds",
        "UNKEY_SECRETS_AWS_DURATION_SECONDS",
        "the role session's length, 900-43200 seconds (overrides "
        "UNKEY_SECRETS_AWS_DURATION_SECONDS; default 3600)",
    ),
}
#: Global options that take a value (the value is never a command name).
GLOBAL_VALUE_OPTIONS = frozenset({"--store", "--audit-log", *SETTINGS_FLAGS})
#: The audit log's file when ``--audit-log`` is not given.
AUDIT_LOG_VARIABLE = "UNKEY_SECRETS_AUDIT_LOG"


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global options, on the top parser (``top``) or again on a command's parser.

    On a command's parser every default is SUPPRESS, so a value given before the command is
    kept unless the same option is given again after it.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print one JSON object per result (and per error)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log our INFO records to stderr; twice: every library at DEBUG (keys stay masked)",
    )
    group.add_argument(
        "--store",
        metavar="NAME",
        default=default(None),
        help="where keys are written: vault, aws or a plugin's name",
    )
    group.add_argument(
        "--audit-log",
        metavar="FILE",
        default=default(None),
        help=f"append an audit event (JSON, one per line) for every change made; created 0600 "
        f"(overrides {AUDIT_LOG_VARIABLE})",
    )
    for flag, setting in SETTINGS_FLAGS.items():
        metavar = flag.rpartition("-")[2].upper()
        group.add_argument(flag, metavar=metavar, default=default(None), help=setting.help)


def add_api_id(
    parser: argparse.ArgumentParser,
    help: str = "the Unkey API (keyspace)",
    *,
    required: bool = True,
) -> None:
    """``--api-id API``: the one spelling every command takes the API by."""
    parser.add_argument("--api-id", required=required, metavar="API", help=help)


def exit_codes(*own: str) -> str:
    """A command's epilog: the exit codes every command has, with its ``own`` (3 or 4)."""
    codes = ("0 done", "1 the command failed", "2 usage, input or configuration", *own)
    return f"Exit codes: {'; '.join(codes)}; 130 interrupted."


def settings_overrides(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """The settings overrides the flags given in ``args`` make, by store name then field.

    ``{"vault": {"addr": "https://vault.internal"}}`` for ``--vault-addr``; a store no flag
    names is absent. A flag given empty or with a control character raises
    :class:`~unkey_secrets.InvalidInputError` naming the flag, not the value.
    """
    overrides: dict[str, dict[str, str]] = {}
    for flag, setting in SETTINGS_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is None:
            continue
        if not value or not value.isprintable():
            raise InvalidInputError(flag, "must be a non-empty printable value")
        overrides.setdefault(setting.store, {})[setting.field] = value
    return overrides


# -- durations ------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:\d{1,12}[smhdw])+")
#: The longest duration any option takes (10 x 365 days): no key, grace period or window
#: outlasts it (Unkey's expiry cannot go past 2100), and every one fits a timedelta.
MAX_DURATION_SECONDS = 10 * 365 * 24 * 3600


def duration(text: str) -> int:
    """Seconds from ``"3600"``, ``"30m"``, ``"24h"``, ``"90d"``, ``"2w"`` or ``"1h30m"``.

    At most :data:`MAX_DURATION_SECONDS`, for every option that takes a duration. The error
    names the accepted forms, never the value.
    """
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        # Counted by its digits first: int() of thousands of digits is refused, or slow.
        seconds = int(text, 10) if len(text) <= 20 else MAX_DURATION_SECONDS + 1
    elif _DURATION.fullmatch(text):
        seconds = sum(int(n) * _UNITS[unit] for n, unit in re.findall(r"(\d+)([smhdw])", text))
    else:
        raise argparse.ArgumentTypeError(
            "must be whole seconds or a duration such as 30m, 24h, 90d or 1h30m"
        )
    if seconds > MAX_DURATION_SECONDS:
        raise argparse.ArgumentTypeError(
            f"may be at most {format_duration(MAX_DURATION_SECONDS)} (10 years)"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` as the largest whole units: ``3d4h``, ``45m``, ``12s``."""
    left = max(0, int(seconds))
    if left == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
        if len(parts) == 2:
            break
    return "".join(parts)


# -- grace periods --------------------------------------------------------------------------

#: The longest ``--grace-period`` accepted: the longest duration (10 x 365 days).
MAX_GRACE_SECONDS = MAX_DURATION_SECONDS


def grace_period(text: str) -> int:
    """``--grace-period``'s type: a :func:`duration` (at most :data:`MAX_GRACE_SECONDS`)."""
    return duration(text)


def add_grace_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--grace-period`` and ``--allow-short-grace``, for a command that rotates.

    ``what`` says whose grace period it is (``the old key``, ``each old key``).
    """
    default = format_duration(DEFAULT_GRACE_PERIOD.total_seconds())
    minimum = format_duration(MINIMUM_GRACE_PERIOD.total_seconds())
    parser.add_argument(
        "--grace-period",
        type=grace_period,
        metavar="DURATION",
        help=f"how long {what} stays valid: seconds or 30m, 24h, 90d... (default {default}, "
        f"at most {format_duration(MAX_GRACE_SECONDS)})",
    )
    parser.add_argument(
        "--allow-short-grace",
        action="store_true",
        help=f"allow a grace period under {minimum}, which readers' caches may outlive",
    )


def grace_options(args: argparse.Namespace) -> dict[str, Any]:
    """``grace_period`` and ``allow_short_grace`` to rotate with (see :func:`add_grace_options`).

    Called before anything is sent: a grace period under the minimum without
    ``--allow-short-grace`` raises :class:`~unkey_secrets.InvalidInputError` naming the flags
    and the durations as the command line writes them (the library's own check names its
    keyword arguments).
    """
    options: dict[str, Any] = {"allow_short_grace": bool(args.allow_short_grace)}
    seconds: int | None = args.grace_period
    if seconds is None:
        return options
    minimum = MINIMUM_GRACE_PERIOD.total_seconds()
    if seconds < minimum and not args.allow_short_grace:
        raise InvalidInputError(
            "--grace-period",
            f"{format_duration(seconds)} is shorter than {format_duration(minimum)}, which "
            "readers' caches may outlive; pass --allow-short-grace to revoke sooner",
        )
    options["grace_period"] = dt.timedelta(seconds=seconds)
    return options


# -- input checks ---------------------------------------------------------------------------

#: The identifiers a command may take: its parsed name (``dest``), the flag, the check.
_IDENTIFIERS: tuple[tuple[str, str, Callable[[object, str], str]], ...] = (
    ("api_id", "--api-id", validate_api_id),
    ("alias", "--alias", validate_alias),
    ("aliases", "--alias", validate_alias),
    ("key_id", "--key-id", validate_key_id),
    ("key_ids", "--key-id", validate_key_id),
    ("rerolled_from", "--rerolled-from", validate_key_id),
    ("after", "--after", validate_key_id),
    ("external_id", "--external-id", validate_external_id),
)


def check_inputs(args: argparse.Namespace) -> None:
    """Check what the command line gave, before the command opens a store or Unkey client.

    Every identifier (:data:`_IDENTIFIERS`) and, for ``provision``, the key's options are held
    to the rules Unkey and the stores hold them to, and the flags that only go together are
    checked. Raises :class:`~unkey_secrets.InvalidInputError` naming the flag (exit 2); the
    value is described by its length, never echoed. ``--aliases-file`` is read by the command
    itself, before it opens anything too.
    """
    for dest, flag, check in _IDENTIFIERS:
        value = getattr(args, dest, None)
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                check(item, flag)
    if getattr(args, "command", None) == "provision":
        _check_provision(args)


def _check_provision(args: argparse.Namespace) -> None:
    from ..unkey.options import (
        check_meta,
        check_permissions,
        check_prefix,
        check_roles,
        check_text,
        check_timestamp,
    )

    checks: dict[str, Callable[[Any], object]] = {
        "name": lambda value: check_text(value, "name", 1, 255),
        "prefix": check_prefix,
        "meta": check_meta,
        "expires": lambda value: check_timestamp(value, "expires"),
        "permissions": check_permissions,
        "roles": check_roles,
    }
    flags = {"permissions": "--permission", "roles": "--role"}
    for dest, check in checks.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        try:
            check(value)
        except InvalidInputError as exc:
            raise InvalidInputError(flags.get(dest, f"--{dest}"), exc.problem) from None
    if args.replace and args.alias is None:
        raise InvalidInputError("--replace", "moves an alias to the new key: give --alias too")
    if not args.replace and (args.grace_period is not None or args.allow_short_grace):
        raise InvalidInputError(
            "--grace-period" if args.grace_period is not None else "--allow-short-grace",
            "is for the key --replace replaces; without --replace no key is replaced",
        )


# -- mistyped commands ----------------------------------------------------------------------


def closest_command(argv: Sequence[str], commands: Iterable[str]) -> tuple[str, str] | None:
    """The command word of ``argv`` when it is not a command, and the closest command.

    None when ``argv`` names a command, names none, or nothing is close. Only our command's
    name is ever shown; the typed word is not echoed.
    """
    names = list(commands)
    remaining = iter(argv)
    for arg in remaining:
        if arg in GLOBAL_VALUE_OPTIONS:
            next(remaining, None)
        elif arg == "--":
            break
        elif not arg.startswith("-"):
            if arg in names:
                return None
            match = difflib.get_close_matches(arg, names, n=1, cutoff=0.6)
            return (arg, match[0]) if match else None
    return None


# -- alias lists ----------------------------------------------------------------------------

#: The most aliases one file may name (the file is read whole, then checked line by line).
MAX_ALIASES = 100_000


def aliases_from(given: Sequence[str] | None, path: str | None) -> list[str]:
    """The aliases of ``--alias`` (repeatable) and of ``--aliases-file`` (one per line).

    In the file, blank lines and ``#`` comments are skipped; ``-`` reads stdin. Each alias is
    validated; duplicates are dropped, the first order kept.
    """
    names = list(given or [])
    if path is not None:
        names += _read_alias_file(path)
    seen: dict[str, None] = {}
    for number, name in enumerate(names, 1):
        validate_alias(name, "alias" if number <= len(given or []) else "--aliases-file line")
        seen.setdefault(name, None)
    return list(seen)


def _read_alias_file(path: str) -> list[str]:
    import sys

    try:
        if path == "-":
            text = sys.stdin.read() if sys.stdin is not None else ""
        else:
            text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            "--aliases-file", f"cannot be read ({type(exc).__name__})"
        ) from None
    names = []
    # Lines end at "\n" alone, and only blanks, tabs and a "\r" are trimmed: str.splitlines
    # and str.strip would also break at, or drop, a control character or a Unicode line
    # separator ("svc\x85web" read as two aliases, "svc\x1f" as "svc") that validation refuses.
    for line in text.split("\n"):
        line = line.split("#", 1)[0].strip(" \t\r")
        if line:
            names.append(line)
    if len(names) > MAX_ALIASES:
        raise InvalidInputError("--aliases-file", f"names more than {MAX_ALIASES} aliases")
    return names
