"""``unkey-secrets``: provision, rotate and capture Unkey keys from deployment scripts.

::

    unkey-secrets [--json] [-v | -vv] [--store NAME] [--audit-log FILE] [SETTINGS FLAGS]
                  COMMAND ...

    provision --api-id API [--alias NAME [--replace [--grace-period DURATION]]] [--mode safe|fast]
              [--name N] [--prefix P] [--external-id E] [--meta JSON] [--expires MS]
              [--permission P ...] [--role R ...]
    rotate    --api-id API (--alias NAME | --key-id KEY) [--grace-period DURATION]
              [--allow-short-grace] [--takeover]
    capture   --api-id API --key-id KEY [--alias NAME] [--rerolled-from KEY | --delete-if-unstored]
              [--prompt]
    show      --api-id API (--alias NAME | --key-id KEY)
    stores
    list      --api-id API [--all] [--status S ...] [--alias NAME ...] [--external-id E]
              [--limit N] [--after KEY] [--expiring-within DURATION]
    verify    --api-id API (--alias NAME ... | --aliases-file FILE | --key-id KEY ...)
              [--expiring-within DURATION]
    reconcile --api-id API [--alias NAME ...] [--apply | --dry-run] [--min-age DURATION]
    doctor    --api-id API [--alias NAME] [--write-probe] [--expiring-within DURATION]
    rotate-due --api-id API --older-than DURATION (--alias NAME ... | --aliases-file FILE |
              --all-aliases) [--age-from unkey|store] [--grace-period DURATION] [--dry-run]
    bulk      FILE [--api-id API] [--format csv|jsonl] [--concurrency N] [--mode safe|fast]
              [--dry-run] (when installed: unkey_secrets/cli/bulk.py)

Global options go before or after the command. Every command names its API with ``--api-id``
(``bulk``: the API of the lines without an ``api`` field), and every identifier it is given is
checked before a store or Unkey client is opened (exit ``2``, naming the flag). Durations are
seconds or ``30m``, ``24h``, ``90d``, at most ten years. With ``_ARGCOMPLETE`` set (by a shell's
completion function, docs/cli-completion.md) the command answers the completion request through
argcomplete and runs nothing. ``--audit-log FILE`` (or ``UNKEY_SECRETS_AUDIT_LOG``) appends one
audit event per change the command makes to FILE, as JSON lines (schema
``unkey-secrets/audit/v1``, :mod:`unkey_secrets.telemetry.audit`), the file created with mode
0600. The settings flags ``--vault-addr``, ``--vault-namespace``, ``--mount``, ``--region``,
``--profile``, ``--endpoint-url``, ``--role-arn``, ``--role-external-id``,
``--role-session-name`` and ``--duration-seconds`` win over the environment variable each one
names.

Configuration flows through the library's one precedence chain
(:func:`unkey_secrets.settings.load_settings`): a settings flag, then the environment, then the
default. The flags are handed to the chosen store's ``from_settings`` as overrides; the
environment itself is never changed. The rest comes from the settings the library already
reads: ``UNKEY_ROOT_KEY`` and ``UNKEY_BASE_URL`` for Unkey, and the chosen store's own
variables (``VAULT_ADDR``, ``VAULT_TOKEN``...; ``AWS_REGION``, ``AWS_ENDPOINT_URL`` and the
standard AWS credential chain). No option takes a secret: ``capture`` reads the key from
stdin, where neither ``ps`` nor the shell history sees it. ``capture`` never deletes a key in
Unkey unless asked with ``--delete-if-unstored``: the key may already be in use, and a wrong
store setting must not revoke it. ``show`` reads the stored value (a reader's permission) and
prints its metadata (key_id, location, version, issued_at, expires, rerolled_from), never the
key.

Exit codes: ``0`` done; ``1`` the command failed (a flow, store or Unkey error, or an unexpected
error, which is named by its class only); ``2`` usage, invalid input or configuration; ``3`` a
check ran and found problems (verify, reconcile, doctor, list --expiring-within); ``4`` some
items failed, the others were done (rotate-due, bulk); ``130`` interrupted. A failure ends with
one line, ``error: <message>``, on stderr (warning log lines, e.g. about a compensation, may
precede it; with ``--json`` an error object also goes to stdout, usage errors included);
tracebacks are never printed. A stdout that is closed or whose reader went away does not change
the exit code of a command that succeeded. The process disables core dumps and installs the log
guards before anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import gc
import getpass
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .. import __version__
from .._config import setting_names
from .._errors import (
    ConfigurationError,
    InvalidInputError,
    SecretNotFoundError,
    StoreAccessError,
    UnkeySecretsError,
)
from .._redact import confined, disable_core_dumps, install_guards
from .._secret import Secret
from .._validate import needs_unkey_confirmation, validate_key_id
from ..rotation.core import confirm_key_id
from ..stores import SecretStore, available_stores, load_store
from ..telemetry.audit import AUDIT_LOGGER, AuditLogHandler
from ..telemetry.tracing import flow
from . import options as _options
from .commands import MODULES
from .options import (
    AUDIT_LOG_VARIABLE,
    GLOBAL_VALUE_OPTIONS,
    SETTINGS_FLAGS,
    add_api_id,
    add_global_options,
    add_grace_options,
    check_inputs,
    closest_command,
    exit_codes,
    grace_options,
    settings_overrides,
)
from .output import (
    Output,
    capture_record,
    provision_record,
    rotation_record,
    settle,
    show_record,
    stores_record,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

    from ..unkey import UnkeyClient

__all__ = [
    "COMMANDS",
    "COMPLETION_VARIABLE",
    "EXIT_FAILURE",
    "EXIT_FINDINGS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "MAX_GRACE_SECONDS",
    "MAX_KEY_BYTES",
    "PartialFailure",
    "UsageError",
    "audit_log",
    "build_parser",
    "command_names",
    "configure_logging",
    "exit_code_for",
    "main",
    "pooled",
    "read_key",
    "run",
    "store_from_env",
    "unkey_from_env",
    "usage_message",
]

#: The longest key ``capture`` accepts on stdin; Unkey keys are far shorter.
MAX_KEY_BYTES = 4096
#: The longest ``--grace-period`` accepted (see :mod:`.options`).
MAX_GRACE_SECONDS = _options.MAX_GRACE_SECONDS
_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


#: The exit codes (defined in :mod:`.options`, shared by every command module).
EXIT_OK = _options.EXIT_OK
EXIT_FAILURE = _options.EXIT_FAILURE
EXIT_USAGE = _options.EXIT_USAGE
EXIT_FINDINGS = _options.EXIT_FINDINGS
EXIT_PARTIAL = _options.EXIT_PARTIAL
EXIT_INTERRUPTED = _options.EXIT_INTERRUPTED
#: Raised by a command over many items when some failed: exit :data:`EXIT_PARTIAL`.
PartialFailure = _options.PartialFailure


class UsageError(Exception):
    """The command line could not be parsed; the message never quotes an argument's value.

    ``parser`` is the parser that refused it (a command's, for a bad option of that command),
    if one did.
    """

    def __init__(self, message: str, parser: argparse.ArgumentParser | None = None) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """An argparse parser that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        """Hand the problem to :func:`main`, which prints it without the values."""
        raise UsageError(message, self)

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # --help and --version: argparse tolerates a broken stream, but not a closed one.
        if message:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                (file or sys.stderr).write(message)


# -- argument types: their errors name the problem, never the value ------------------------


def _meta(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise argparse.ArgumentTypeError("not valid JSON") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("may not be negative")
    return value


def build_parser(
    argv: Sequence[str] | None = None, *, complete: bool = False
) -> argparse.ArgumentParser:
    """The ``unkey-secrets`` argument parser (``argv``: the arguments it will parse, if known).

    When ``argv`` names a command and asks for no help, only that command's parser is built
    whole: the others are stand-ins that know their name only, and their modules are not
    imported (start-up pays for the command that runs). ``complete`` builds every command's
    parser whatever ``argv`` says (but ``bulk``'s: its module is imported only when ``argv``
    names it, or is not given).
    """
    parser = _Parser(
        prog="unkey-secrets",
        description="Issue, rotate and store Unkey API keys in Vault or AWS Secrets Manager, "
        "without the plaintext touching disk, logs or this command's output.",
        epilog="Exit codes: 0 done, 1 the command failed, 2 usage, input or configuration, "
        "3 a check found problems (verify, reconcile, doctor, list --expiring-within), 4 some "
        "items failed "
        "(rotate-due, bulk), 130 interrupted. Configuration is read from the environment; "
        "the settings flags win over it (the environment is not changed). Global options go "
        "before or after the command.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    help_asked = argv is not None and not {"-h", "--help"}.isdisjoint(argv)
    named = None if complete or argv is None or help_asked else _global_json(argv)[1]
    builders: dict[str, Callable[[Any], None]] = {
        "provision": _add_provision,
        "rotate": _add_rotate,
        "capture": _add_capture,
        "show": _add_show,
        "stores": _add_stores,
    }
    builders.update({name: _module_builder(module) for name, module in MODULES.items()})
    for name, build in builders.items():
        if named is None or name == named:
            build(commands)
        else:
            # Not this run's command: a stand-in that knows its name keeps its module off.
            commands.add_parser(name, add_help=False, allow_abbrev=False)
    stand_ins = {name for name in builders if named is not None and name != named}
    if _has_bulk():
        if argv is None or "bulk" in argv:
            _bulk_module().add_parser(commands)
        else:
            # Not this run's command: a stand-in (listed with bulk's own summary under --help)
            # keeps bulk's imports, the flows and the Unkey client's, off start-up.
            commands.add_parser("bulk", help=_BULK_HELP, allow_abbrev=False)
    for name, command in commands.choices.items():
        if name not in stand_ins:
            add_global_options(command, top=False)
    return parser


def _add_provision(commands: Any) -> None:
    provision = commands.add_parser(
        "provision",
        help="create a key in Unkey and store it",
        epilog=exit_codes(),
        allow_abbrev=False,
    )
    _api_and_alias(provision)
    provision.add_argument(
        "--mode",
        choices=("safe", "fast"),
        default="safe",
        help="safe (default): create disabled, store, enable; fast: create enabled, "
        "delete if storing fails",
    )
    provision.add_argument(
        "--replace",
        action="store_true",
        help="if --alias names a key already, move it to the new key and cut the old one to "
        "the grace period (without it, a taken alias is refused)",
    )
    provision.add_argument("--name", help="the key's name in Unkey")
    provision.add_argument("--prefix", help="the key's prefix (e.g. live)")
    provision.add_argument("--external-id", help="the identity (tenant, user) the key belongs to")
    provision.add_argument("--meta", type=_meta, help="a JSON object stored with the key in Unkey")
    provision.add_argument(
        "--expires", type=_non_negative_int, metavar="MS", help="expiry, Unix milliseconds"
    )
    provision.add_argument(
        "--permission",
        action="append",
        dest="permissions",
        metavar="P",
        help="a permission to grant (repeatable)",
    )
    provision.add_argument(
        "--role", action="append", dest="roles", metavar="R", help="a role to grant (repeatable)"
    )
    add_grace_options(provision, "the key --replace replaces")


def _add_rotate(commands: Any) -> None:
    rotate = commands.add_parser(
        "rotate",
        help="reroll a key, store the new one, keep the old one valid for a grace period",
        epilog=exit_codes(),
        allow_abbrev=False,
    )
    _api_and_alias(
        rotate,
        "the alias whose key to rotate (the documented way); every alias naming the key moves",
    )
    rotate.add_argument(
        "--key-id",
        metavar="KEY",
        help="the key to rotate, if not the one --alias names (every alias naming it moves)",
    )
    rotate.add_argument(
        "--takeover",
        action="store_true",
        help="take over a rotation another run claimed, when you know that run died",
    )
    add_grace_options(rotate, "the old key")


def _add_capture(commands: Any) -> None:
    capture = commands.add_parser(
        "capture",
        help="store a key you already hold, read from stdin (never from the command line)",
        epilog=exit_codes(),
        allow_abbrev=False,
    )
    _api_and_alias(capture)
    capture.add_argument("--key-id", required=True, metavar="KEY", help="the key's keyId")
    origin = capture.add_mutually_exclusive_group()
    origin.add_argument(
        "--rerolled-from",
        metavar="KEY",
        help="the key it was rerolled from, if any (such a key is never deleted)",
    )
    origin.add_argument(
        "--delete-if-unstored",
        action="store_true",
        help="if the key cannot be stored, delete it in Unkey (needs UNKEY_ROOT_KEY); "
        "only for a key created just for this, never one already in use",
    )
    capture.add_argument(
        "--prompt",
        action="store_true",
        help="read the key from the terminal without echo instead of from stdin",
    )


def _add_show(commands: Any) -> None:
    show = commands.add_parser(
        "show",
        help="print what the store holds for an alias or key_id (metadata only, never the key)",
        epilog=exit_codes(),
        allow_abbrev=False,
    )
    add_api_id(show)
    which = show.add_mutually_exclusive_group(required=True)
    which.add_argument("--alias", metavar="NAME", help="the alias whose current key to show")
    which.add_argument(
        "--key-id",
        metavar="KEY",
        help="the key to show, by its keyId (an older keyId, key_ and 22 characters, is first "
        "confirmed with Unkey: UNKEY_ROOT_KEY)",
    )


def _add_stores(commands: Any) -> None:
    commands.add_parser(
        "stores", help="list the installed stores", epilog=exit_codes(), allow_abbrev=False
    )


#: ``bulk``'s line under ``unkey-secrets --help`` (:mod:`.bulk` gives its parser the same).
_BULK_HELP = "provision one key per line of a CSV or JSON-lines file; safe to run again"


def _module_builder(module: str) -> Callable[[Any], None]:
    """What adds the command that ``module`` (under :mod:`.commands`) defines."""

    def build(commands: Any) -> None:
        _command_module(module).add_parser(commands)

    return build


def _command_module(name: str) -> Any:
    import importlib

    return importlib.import_module(f"{__package__}.commands.{name}")


def _has_bulk() -> bool:
    """Whether ``unkey_secrets.cli.bulk`` is installed (found without importing it)."""
    import importlib.util

    return importlib.util.find_spec(f"{__package__}.bulk") is not None


def _bulk_module() -> Any:
    """``unkey_secrets.cli.bulk``: ``add_parser(subparsers)`` and ``run(args, out)``."""
    import importlib

    return importlib.import_module(f"{__package__}.bulk")


def command_names() -> list[str]:
    """Every command's name, the operations commands and ``bulk`` (when installed) included."""
    names = [*COMMANDS, *MODULES]
    if _has_bulk():
        names.append("bulk")
    return names


def _api_and_alias(command: argparse.ArgumentParser, alias_help: str | None = None) -> None:
    add_api_id(command)
    command.add_argument(
        "--alias",
        metavar="NAME",
        help=alias_help or "also point this stable, reader-facing name at the key",
    )


# -- usage errors ---------------------------------------------------------------------------


def usage_message(message: str, argv: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """``message`` from argparse, with every value the user typed taken out.

    A key pasted on the command line by mistake must not reach a CI log through the error that
    refuses it, whether as its own argument, after ``=`` or glued to a flag (``-vKEY``). The
    errors that carry a value are reworded to name the option only; in whatever is left, every
    quoted text that is not one of ``parser``'s option names or choices is masked, and so is
    every argument that is not one of them.
    """
    known = _known_words(parser)
    head, sep, rest = message.partition("unrecognized arguments:")
    if sep:
        tokens = rest.split()
        names = [token for token in tokens if token in known and token.startswith("-")]
        shown = f" (options: {' '.join(names)})" if names else ""
        return (
            f"{head}{len(tokens)} unrecognized argument(s){shown}; values are not echoed, and a "
            "key is read from stdin (capture), never from the command line"
        )
    head, sep, _ = message.partition("ignored explicit argument")
    if sep:
        message = f"{head}ignored a value glued to it (values are not echoed)"
    head, sep, rest = message.partition("invalid choice:")
    if sep:
        # argparse puts our choices after the value: the last "(choose from" is ours.
        _, sep, choices = rest.rpartition(" (choose from ")
        message = f"{head}invalid choice: '<value>'" + (f" (choose from {choices}" if sep else "")
    typed = re.match(r"(argument [^:]*: invalid [\w.<>-]+ value):", message)
    if typed:
        message = typed.group(1)
    if message.startswith("ambiguous option"):
        message = "ambiguous option: spell options out in full"
    message = _QUOTED.sub(lambda m: m[0] if m[0][1:-1] in known else "'<value>'", message)
    values = set()
    for token in argv:
        values.add(token)
        values.add(token.partition("=")[2])
    # Shorter ones are no secret, and would cut words in the message.
    given = sorted((value for value in values - known if len(value) >= 4), key=len, reverse=True)
    if not given:
        return message
    # Whole tokens only, outside quotes: what is still quoted is an option name or a choice
    # (the rest was masked above), and a typed value is never cut out of one (a mistyped
    # 'rotate-du' left 'rotate-due' in the choices as '<value>e') nor out of a longer word.
    whole = re.compile(
        r"(?<![\w-])(?:" + "|".join(re.escape(value) for value in given) + r")(?![\w-])"
    )
    return "".join(
        piece if index % 2 else whole.sub("<value>", piece)
        for index, piece in enumerate(_QUOTED_SPLIT.split(message))
    )


#: A Python string literal, as ``%r`` writes a value into argparse's messages.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')
#: The same, capturing: ``split`` yields unquoted and quoted pieces in turn.
_QUOTED_SPLIT = re.compile(f"({_QUOTED.pattern})")


def _known_words(parser: argparse.ArgumentParser) -> set[str]:
    """Every option name, choice and command of ``parser`` and its subcommands."""
    words: set[str] = set()
    pending = [parser]
    while pending:
        current = pending.pop()
        for action in current._actions:
            words.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
            if action.choices is not None:
                words.update(str(choice) for choice in action.choices)
    return words


def _usage_parser(
    parser: argparse.ArgumentParser, error: UsageError, command: str | None
) -> argparse.ArgumentParser:
    """The parser whose usage to print with ``error``: the command's when one is named.

    A command's parser refuses a bad value of its options itself; an argument no parser took
    (refused by the top parser) or a check made after parsing is about the command named, too.
    Only a command line naming no command (or a mistyped one) gets the global usage.
    """
    if error.parser is not None and error.parser is not parser:
        return error.parser
    for action in parser._actions:  # argparse keeps no public handle on its subparsers
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            found: argparse.ArgumentParser = action.choices[command]
            return found
    return parser


def _global_json(argv: Sequence[str]) -> tuple[bool, str | None]:
    """Whether ``--json`` is given (before or after the command), and the command named."""
    as_json = False
    command: str | None = None
    names = set(command_names())
    remaining = iter(argv)
    for arg in remaining:
        if arg in GLOBAL_VALUE_OPTIONS:
            next(remaining, None)  # its value, whatever it looks like
        elif arg == "--json":
            as_json = True
        elif arg == "--":
            break
        elif command is None and not arg.startswith("-"):
            if arg not in names:
                break
            command = arg
    return as_json, command


# -- configuration --------------------------------------------------------------------------


#: The settings flags of the command running now, by store name then field (set by main for
#: one run). A context variable rather than os.environ: nothing outside the run sees them, and
#: the seams below keep their one-argument form (tests, and cli/bulk.py, call them so).
_FLAG_OVERRIDES: contextvars.ContextVar[Mapping[str, Mapping[str, str]] | None] = (
    contextvars.ContextVar("unkey_secrets_cli_flag_overrides", default=None)
)


#: How many threads the running command uses the store and Unkey from at once (None: one),
#: set for one run by :func:`pooled`.
_POOL_SIZE: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "unkey_secrets_cli_pool_size", default=None
)
#: The packages of the stores whose settings size their connection pool (``max_connections``).
_POOLED_STORES = ("unkey_secrets.stores.vault.", "unkey_secrets.stores.aws.")


@contextlib.contextmanager
def pooled(threads: int) -> Iterator[None]:
    """Build the block's store and Unkey client for ``threads`` threads sending at once.

    Both connection pools are made that large (the Unkey client's, and a built-in store's
    ``max_connections``, over its environment variable), so no thread waits for a connection
    and none is opened only to be thrown away (urllib3's "Connection pool is full, discarding
    connection"). ``bulk`` runs under it with its ``--concurrency``.
    """
    token = _POOL_SIZE.set(threads)
    try:
        yield
    finally:
        _POOL_SIZE.reset(token)


def unkey_from_env() -> UnkeyClient:
    """The Unkey client, from ``UNKEY_ROOT_KEY``, ``UNKEY_BASE_URL``... (a seam for tests)."""
    from ..unkey import UnkeyClient  # httpx: loaded by the commands that talk to Unkey

    threads = _POOL_SIZE.get()
    if threads is None:
        client = UnkeyClient.from_settings()
    else:
        client = UnkeyClient.from_settings(max_connections=threads)
    _started()
    return client


def store_from_env(
    name: str | None, overrides: Mapping[str, Mapping[str, str]] | None = None
) -> SecretStore:
    """The store registered as ``name``, configured from the environment (a seam for tests).

    ``overrides`` (default: the running command's settings flags) maps a store name to the
    settings fields to override; those for ``name`` go to its ``from_settings`` as keywords,
    where they win over the environment. Raises :class:`~unkey_secrets.ConfigurationError`
    when no store is chosen, the store cannot be configured this way, or a setting is bad.
    """
    if not name:
        installed = ", ".join(available_stores()) or "none"
        raise ConfigurationError(f"choose a store with --store (installed: {installed})")
    store_class = load_store(name)
    factory = getattr(store_class, "from_settings", None)
    if not callable(factory):
        raise ConfigurationError(
            f"store {name!r} has no from_settings(), so it cannot be configured from the "
            "environment; use it from Python instead"
        )
    if overrides is None:
        overrides = _FLAG_OVERRIDES.get() or {}
    given = dict(overrides.get(name, {}))
    # The store's settings flags: an error about a value one of them gave names that flag.
    flags = {s.field: flag for flag, s in SETTINGS_FLAGS.items() if s.store == name}
    flagged = sorted(flags[field] for field in given if field in flags)
    threads = _POOL_SIZE.get()
    if threads is not None and store_class.__module__.startswith(_POOLED_STORES):
        given["max_connections"] = str(threads)
    try:
        # Keywords only when a flag was given: a plugin's from_settings may take none.
        with setting_names(flags, given):
            store = factory(**given)
    except UnkeySecretsError:
        raise
    except ValueError as exc:
        # e.g. botocore refusing AWS_MAX_ATTEMPTS while building its client. Named by class
        # only: its text may quote a setting's value.
        also = f" and the flags given ({', '.join(flagged)})" if flagged else ""
        raise ConfigurationError(
            f"store {name!r} could not be configured from the environment "
            f"({type(exc).__name__}); check its settings{also}"
        ) from None
    if not isinstance(store, SecretStore):
        raise ConfigurationError(f"store {name!r}: from_settings() did not return a SecretStore")
    _started()
    return store


def read_key(*, prompt: bool) -> Secret:
    """Read the plaintext from stdin (or, with ``prompt``, the terminal without echo).

    Refuses a terminal on stdin without ``prompt``: a key typed there would be echoed. Errors
    say what is wrong with the input, never what it was.
    """
    stdin = sys.stdin
    if stdin is None:
        raise InvalidInputError("stdin", "is closed: pipe the key in")
    if prompt:
        if not stdin.isatty():
            raise InvalidInputError("--prompt", "needs a terminal; without one, pipe the key in")
        try:
            text = getpass.getpass("Unkey key (not echoed): ")
        except EOFError:
            raise InvalidInputError("key", "no key given") from None
    else:
        if stdin.isatty():
            raise InvalidInputError(
                "stdin",
                "is a terminal, where a typed key would be echoed: pipe the key in, "
                "or pass --prompt to type it without echo",
            )
        raw = stdin.buffer.read(MAX_KEY_BYTES + 1)
        if len(raw) > MAX_KEY_BYTES:
            raise InvalidInputError("key", f"stdin holds more than {MAX_KEY_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # The error's .object is the input itself.
            raise InvalidInputError("key", "stdin is not UTF-8 text") from None
    key = text.strip()
    if not key:
        raise InvalidInputError("key", "stdin is empty: pipe the key in")
    if not all(char.isprintable() and not char.isspace() for char in key):
        raise InvalidInputError("key", "must be one line without spaces or control characters")
    return Secret(key)


def configure_logging(verbosity: int) -> None:
    """Records to stderr: WARNING and up; ``-v`` our INFO; ``-vv`` DEBUG from every library.

    The record guard installed by :func:`main` masks keys in every record, whatever its level.
    """
    logging.basicConfig(format=_LOG_FORMAT, stream=sys.stderr)
    if verbosity >= 2:
        logging.getLogger().setLevel(logging.DEBUG)
    elif verbosity == 1:
        logging.getLogger("unkey_secrets").setLevel(logging.INFO)


@contextlib.contextmanager
def audit_log(path: str | None) -> Iterator[None]:
    """Append the audit events of the block to ``path`` (JSON lines), if one is given.

    The audit logger is set to INFO and stops propagating for the block, so the events go to
    the file and not to stderr as well; both are put back afterwards. Raises
    :class:`~unkey_secrets.ConfigurationError` when the file cannot be opened.
    """
    if not path:
        yield
        return
    handler = AuditLogHandler(path)
    logger = logging.getLogger(AUDIT_LOGGER)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        handler.close()


# -- commands -------------------------------------------------------------------------------


def _provision(args: argparse.Namespace, out: Output) -> None:
    # The replaced key's grace period, checked before anything is sent (as rotate's).
    options: dict[str, Any] = grace_options(args) if args.replace else {}
    from .. import flows

    store = store_from_env(args.store)
    options.update(
        (name, getattr(args, name))
        for name in ("name", "prefix", "external_id", "meta", "expires", "permissions", "roles")
        if getattr(args, name) is not None
    )
    with unkey_from_env() as unkey:
        result = flows.provision(
            unkey,
            store,
            args.api_id,
            alias=args.alias,
            replace=args.replace,
            mode=args.mode,
            **options,
        )
    out.result(provision_record(result, args.alias))


def _rotate(args: argparse.Namespace, out: Output) -> None:
    if args.key_id is not None:
        validate_key_id(args.key_id, "--key-id")
    options: dict[str, Any] = {**grace_options(args), "takeover": args.takeover}
    from .. import flows

    store = store_from_env(args.store)
    with unkey_from_env() as unkey:
        result = flows.rotate(unkey, store, args.api_id, args.key_id, alias=args.alias, **options)
    out.result(rotation_record(result, args.alias))


def _capture(args: argparse.Namespace, out: Output) -> None:
    from .. import flows

    _confirm_ids({"--key-id": args.key_id, "--rerolled-from": args.rerolled_from})
    # Only on request: the key may be live already, and a wrong store setting (a bad
    # VAULT_TOKEN) must not revoke it. Checked before the key is read.
    unkey = _deleting_client() if args.delete_if_unstored else None
    try:
        secret = read_key(prompt=args.prompt)
        # Everything from here on, our output included, has this plaintext masked.
        with confined(secret):
            store = store_from_env(args.store)
            location = flows.capture(
                store,
                api_id=args.api_id,
                key_id=args.key_id,
                key=secret,
                alias=args.alias,
                rerolled_from=args.rerolled_from,
                unkey=unkey,
            )
            out.result(
                capture_record(
                    location,
                    api_id=args.api_id,
                    alias=args.alias,
                    rerolled_from=args.rerolled_from,
                )
            )
    finally:
        if unkey is not None:
            unkey.close()


def _deleting_client() -> UnkeyClient:
    try:
        return unkey_from_env()
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"--delete-if-unstored needs UNKEY_ROOT_KEY and a working Unkey configuration, "
            f"to delete the key in Unkey: {exc}"
        ) from None


def _confirm_ids(ids: Mapping[str, str | None]) -> None:
    """Check the keyIds given by flag, before any store is opened; raise InvalidInputError.

    The shape is checked first (a key passed as an id is refused, unechoed). An id the shape
    cannot tell from a key (``key_`` and a long random run: an older keyId, or a key whose
    prefix is ``key``) is then confirmed with Unkey (one keys.getKey), so a store path never
    holds a value Unkey does not know; without Unkey configured such an id is refused.
    """
    doubtful = {
        flag: value
        for flag, value in ids.items()
        if value is not None and needs_unkey_confirmation(validate_key_id(value, flag))
    }
    if not doubtful:
        return
    try:
        unkey = unkey_from_env()
    except ConfigurationError:
        raise InvalidInputError(
            next(iter(doubtful)),
            "has a key's random run (an older keyId, or a key whose prefix is key), so Unkey "
            "confirms it before a store path holds it, and Unkey is not configured "
            "(UNKEY_ROOT_KEY); configure it, or name the key by --alias",
        ) from None
    with unkey:
        for flag, value in doubtful.items():
            confirm_key_id(unkey, value, flag)


def _show(args: argparse.Namespace, out: Output) -> None:
    _confirm_ids({"--key-id": args.key_id})
    store = store_from_env(args.store)
    try:
        if args.alias is not None:
            stored = store.get_current(api_id=args.api_id, alias=args.alias)
        else:
            stored = store.get(api_id=args.api_id, key_id=args.key_id)
    except SecretNotFoundError as exc:
        what = f"alias {args.alias}" if args.alias is not None else f"key {args.key_id}"
        raise SecretNotFoundError(
            f"{store.name} holds no {what} of API {args.api_id}"
            + (f" (nothing at {exc.location})" if exc.location else ""),
            store=exc.store,
            location=exc.location,
        ) from None
    except StoreAccessError as exc:
        # show reads the value: a writer's credentials may not. Say which policy grants it.
        policy = (
            "policies/vault-reader.hcl" if store.name == "vault" else "policies/aws-reader.json"
        )
        raise StoreAccessError(
            f"{exc}; show reads the stored value, which the reader policy grants ({policy})",
            store=exc.store,
            location=exc.location,
        ) from None
    # The value was read whole; everything printed from here has its key masked, and only
    # metadata is copied into the record.
    with confined(stored.secret):
        record = show_record(stored, store=store.name, alias=args.alias)
        del stored
        out.result(record)


def _stores(args: argparse.Namespace, out: Output) -> None:
    out.result(stores_record(available_stores()))


#: The commands defined here; the operations commands live in :mod:`.commands`, ``bulk`` in
#: :mod:`.bulk` when it is installed (see :func:`command_names`).
COMMANDS: dict[str, Callable[[argparse.Namespace, Output], int | None]] = {
    "provision": _provision,
    "rotate": _rotate,
    "capture": _capture,
    "show": _show,
    "stores": _stores,
}


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of a failure."""
    if isinstance(exc, (InvalidInputError, ConfigurationError)):
        return EXIT_USAGE
    if isinstance(exc, PartialFailure):
        return EXIT_PARTIAL
    return EXIT_FAILURE


#: What ``error.type`` says of a command that returned a nonzero exit code (see _exited).
_EXIT_ERRORS = {EXIT_FINDINGS: "ProblemsFound", EXIT_PARTIAL: "PartialFailure"}


def _exit_code_of(exc: BaseException) -> int:
    """The exit code ``main`` ends with when the command raised ``exc``."""
    return EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else exit_code_for(exc)


def _exited(scope: Any, code: int) -> None:
    """Make the command's flow (``scope``, what :func:`flow` returned) follow its exit code.

    A command that returns 3 (a check found problems) or 4 (some items failed) raised
    nothing, yet did not end well: its span is an error and its flow ``failed``, with
    ``error.type`` ``ProblemsFound`` or ``PartialFailure`` (the class a command that raises
    for exit 4 names). ``process.exit.code`` is on the span whatever the code.
    """
    scope.set(**{"process.exit.code": code})
    if code != EXIT_OK:
        scope.failed(_EXIT_ERRORS.get(code, str(code)))


def _runner(command: str) -> Callable[[argparse.Namespace, Output], int | None]:
    if command in COMMANDS:
        return COMMANDS[command]
    if command in MODULES:
        run: Callable[[argparse.Namespace, Output], int | None] = _command_module(
            MODULES[command]
        ).run
        return run
    if command == "bulk" and _has_bulk():
        bulk_run: Callable[[argparse.Namespace, Output], int | None] = _bulk_module().run
        return bulk_run
    raise UsageError(f"unknown command {command}")  # pragma: no cover - argparse refuses it


#: Set by the shell's completion function (argcomplete's) when it asks for completions.
COMPLETION_VARIABLE = "_ARGCOMPLETE"


def _complete() -> int:
    """Answer the shell's completion request through argcomplete, which exits the process.

    Only run when :data:`COMPLETION_VARIABLE` is set, so a normal start-up neither imports
    argcomplete nor builds every command's parser. The parser is the whole one
    (``build_parser(complete=True)``, ``bulk``'s options too once the line names it), and
    ``--store`` completes to the installed stores' names. Options are offered once a ``-`` is
    typed. Without argcomplete installed (the ``completion`` extra), exit 2 and complete nothing.
    """
    try:
        import argcomplete
    except ImportError:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.write(
                "error: shell completion needs argcomplete: "
                "pip install 'unkey-secrets[completion]'\n"
            )
        return EXIT_USAGE
    line = os.environ.get("COMP_LINE", "")
    try:
        point = int(os.environ.get("COMP_POINT", len(line)))
        words = list(argcomplete.split_line(line, point)[3])
    except (ValueError, argcomplete.ArgcompleteException):
        words = line.split()
    parser = build_parser(words[1:], complete=True)
    stores = argcomplete.ChoicesCompleter(available_stores())
    pending = [parser]
    while pending:
        current = pending.pop()
        for action in current._actions:
            if "--store" in action.option_strings:
                setattr(action, "completer", stores)  # noqa: B010 (argcomplete's attribute)
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
    argcomplete.autocomplete(parser, always_complete_options=False)
    return EXIT_FAILURE  # pragma: no cover - autocomplete exits once it has answered


#: pydantic's switch for its plugins, which :func:`run` turns off unless it is set.
_PYDANTIC_PLUGINS = "PYDANTIC_DISABLE_PLUGINS"
#: Set by :func:`run` for the process it runs: the command's start-up ends at its first store
#: or Unkey client (:func:`_started`).
_ONE_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "unkey_secrets_cli_one_run", default=False
)


def _started() -> None:
    """The command has a store or its Unkey client: in a :func:`run` process, start-up is over.

    What start-up built (modules, settings, clients) is frozen, so no collection walks it
    again, and the collector is on for the command's work.
    """
    if _ONE_RUN.get():
        gc.freeze()
        gc.enable()


def run() -> NoReturn:
    """The ``unkey-secrets`` process (the console script, ``python -m unkey_secrets.cli``).

    Runs :func:`main` on the process's command line and exits with its code. The garbage
    collector is set for one short run: off while the command starts, since the imports,
    settings and clients build objects that live as long as the process and hold no garbage
    worth a pass (the passes over them were a fifth of a ``provision``'s time); once the
    command has its store or its Unkey client, they are frozen (:func:`gc.freeze`: no
    collection walks them again) and the collector is on for the work, ``bulk``'s included.
    Frozen again at the end, so the interpreter's last collection, at exit, does not walk
    them either.

    pydantic plugins are off (``PYDANTIC_DISABLE_PLUGINS=__all__``, unless that variable is
    set already): a plugin sees every settings class's input, credentials included, and
    looking for plugins reads the entry points of every installed distribution (10-20 ms of a
    ``provision`` with 150 of them installed).
    """
    os.environ.setdefault(_PYDANTIC_PLUGINS, "__all__")
    enabled = gc.isenabled()
    gc.disable()
    token = _ONE_RUN.set(True)
    try:
        code = main()
    finally:
        _ONE_RUN.reset(token)
        gc.freeze()
        if enabled:
            gc.enable()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``unkey-secrets`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    disable_core_dumps()
    install_guards()
    if COMPLETION_VARIABLE in os.environ:
        return _complete()
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    try:
        args = parser.parse_args(arguments)
        if args.command == "rotate" and args.key_id is None and args.alias is None:
            raise UsageError("one of the arguments --alias --key-id is required")
    except UsageError as exc:
        as_json, command = _global_json(arguments)
        out = Output(json=as_json, stdout=sys.stdout, stderr=sys.stderr)
        # Every command's option names and choices, so none of them is masked as a value.
        message = usage_message(str(exc), arguments, build_parser(arguments, complete=True))
        typo = closest_command(arguments, command_names())
        if typo is not None and "invalid choice" in message:
            message = f"{message}; did you mean {typo[1]!r}?"
        out.usage(_usage_parser(parser, exc, command).format_usage(), message, command, EXIT_USAGE)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version print, then exit 0
        settle(sys.stdout)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = Output(json=args.json, stdout=sys.stdout, stderr=sys.stderr)
    configure_logging(args.verbose)
    try:
        # Bad input is refused before the command opens anything (exit 2, the flag named).
        check_inputs(args)
        run = _runner(args.command)
        token = _FLAG_OVERRIDES.set(settings_overrides(args))
        try:
            with (
                audit_log(args.audit_log or os.environ.get(AUDIT_LOG_VARIABLE)),
                flow(f"cli.{args.command}") as scope,
            ):
                try:
                    code = run(args, out)
                except BaseException as exc:
                    scope.set(**{"process.exit.code": _exit_code_of(exc)})
                    raise
                _exited(scope, EXIT_OK if code is None else code)
        finally:
            _FLAG_OVERRIDES.reset(token)
    except KeyboardInterrupt as exc:
        out.failure(args.command, exc, EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 (reported by class only when it is not ours)
        code = exit_code_for(exc)
        out.failure(args.command, exc, code)
        return code
    return EXIT_OK if code is None else code
