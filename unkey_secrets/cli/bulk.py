"""``unkey-secrets bulk FILE``: provision one key per line of a CSV or JSON-lines file.

The file is checked whole first (streaming: memory does not grow with it), so a bad line is
exit ``2`` with nothing sent. Then the lines run on ``--concurrency`` threads
(:func:`unkey_secrets.bulk.provision_many`): Unkey's 429 ``Retry-After`` holds every worker,
Secrets Manager writes are kept under its quota, a failed line does not stop the others, and a
re-run skips the lines already done. Output: with ``--json`` one object per line and a summary
object; otherwise one line per failed line and a summary. A progress bar goes to stderr when it
is a terminal, never under ``--json``.

Only one ``bulk`` may work on a file at a time: the command holds an advisory lock
(``flock``) on FILE while it runs, and a second run of the same file exits ``2``. Holding it,
no earlier run of the file can still be alive: a key one left half done is finished at once
(``provision_many(exclusive=True)``). The library call
(:func:`~unkey_secrets.bulk.provision_many`) has no cross-process claim: it is not safe to run
twice at once over the same lines.

Exit codes: ``0`` every line done (created now, or by an earlier run); ``4`` some lines failed
and the others are done (run the same command again to retry them); ``1`` every line failed (or
an unexpected error); ``2`` the file or an option is invalid, or another ``bulk`` is working on
the file (nothing was sent); ``130`` interrupted (lines in flight finish first).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from .._errors import InvalidInputError, UnkeySecretsError
from .._redact import scrub
from ..bulk import AWS_WRITE_QUOTA, LineResult, check_file, provision_many, read_lines
from . import app
from .options import PartialFailure, add_api_id
from .output import Output

__all__ = [
    "MAX_CONCURRENCY",
    "BulkFailedError",
    "BulkPartialFailure",
    "Summary",
    "add_parser",
    "line_record",
    "lock_file",
    "run",
]

#: The most threads ``--concurrency`` runs lines on.
MAX_CONCURRENCY = 256
#: Failed line numbers kept for the summary (the count is always exact).
_SHOWN_FAILURES = 20
#: Invalid lines reported before giving up on a file.
_SHOWN_INVALID = 20


class BulkFailedError(UnkeySecretsError):
    """Lines failed; exit 1 when every line did. The message names the first ones."""


class BulkPartialFailure(PartialFailure, BulkFailedError):
    """Some lines failed and the others are done (exit 4). The message names the first ones."""


@contextlib.contextmanager
def lock_file(path: str) -> Iterator[bool]:
    """Hold an exclusive advisory lock on ``path`` (opened read-only) while the run lasts.

    Yields whether the lock is held. A second ``bulk`` of the same file while one runs is
    refused (:class:`InvalidInputError`, exit 2). Where ``fcntl`` is missing (Windows), or the
    file system has no locks, nothing is locked (False). A file that cannot be opened is left
    to the file check, which reports it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield False
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInputError(
                "file", f"another bulk run is processing {path}; nothing was sent"
            ) from None
        except OSError:
            locked = False  # a file system without locks: run unlocked
        else:
            locked = True
        yield locked
    finally:
        os.close(fd)  # releases the lock


def _concurrency(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be 1-{MAX_CONCURRENCY}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number") from None
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 10000")
    return value


def add_parser(subparsers: Any) -> None:
    """Add the ``bulk`` command to ``subparsers`` (the result of ``add_subparsers``)."""
    bulk = subparsers.add_parser(
        "bulk",
        help=app._BULK_HELP,
        description="Provision one key per line of FILE (CSV with a header, or JSON lines) with "
        "the fields api, alias, externalId, name, prefix, meta (a JSON object), expires (Unix "
        "ms), permissions, roles; a line without api is for --api-id's API. Each line needs an "
        "alias or an externalId: a re-run skips the "
        "lines already done and never makes a second key for a line, and finishes a key an "
        "earlier run of FILE left half done at once (where FILE cannot be locked, once it is 10 "
        "minutes old: a younger one may be another run's, the line fails, run again later). "
        "One bulk run per file at a time: FILE is locked (flock) while it runs, and the "
        "library call provision_many is not safe to run twice at once over the same lines. "
        "A line over 1 MB or a meta over 10 KB is refused.",
        epilog="Exit codes: 0 every line done; 4 some lines failed, the others are done (run "
        "it again to retry them); 1 every line failed; 2 invalid file or option, or another "
        "bulk run is processing FILE (nothing sent); 130 interrupted.",
        allow_abbrev=False,
    )
    bulk.add_argument("file", metavar="FILE", help="the CSV or JSON-lines file")
    add_api_id(
        bulk,
        "the Unkey API (keyspace) of the lines without an api field (a line's own api wins)",
        required=False,
    )
    bulk.add_argument(
        "--format", choices=("csv", "jsonl"), help="the file's format (default: from its name)"
    )
    bulk.add_argument(
        "--concurrency",
        type=_concurrency,
        default=4,
        metavar="N",
        help=f"lines worked on at once (default 4, at most {MAX_CONCURRENCY})",
    )
    bulk.add_argument(
        "--mode",
        choices=("safe", "fast"),
        default="safe",
        help="as provision's --mode (default safe)",
    )
    bulk.add_argument(
        "--store-writes-per-second",
        type=_rate,
        default=AWS_WRITE_QUOTA,
        metavar="R",
        help=f"Secrets Manager only: writes a second per AWS quota group, shared by every "
        f"worker (default {AWS_WRITE_QUOTA:g}, AWS's quota; lower it when other jobs write too)",
    )
    bulk.add_argument(
        "--dry-run",
        action="store_true",
        help="check the whole file and count its lines, send nothing",
    )
    bulk.add_argument(
        "--no-progress", action="store_true", help="no progress bar, even on a terminal"
    )


def line_record(result: LineResult) -> dict[str, Any]:
    """What ``bulk --json`` prints for one line."""
    return {
        "command": "bulk",
        "line": result.line,
        "ok": result.done,
        "status": result.status,
        "api_id": result.api_id,
        "alias": result.alias,
        "external_id": result.external_id,
        "key_id": result.key_id,
        "location": result.location,
        "attempts": result.attempts,
        "error": result.error,
        "message": result.message,
        "actions": list(result.actions),
    }


@dataclass
class Summary:
    """Counts by status, and the first failed lines."""

    total: int
    counts: dict[str, int] = field(
        default_factory=lambda: {"created": 0, "exists": 0, "completed": 0, "failed": 0}
    )
    failed_lines: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, result: LineResult) -> None:
        """Count one processed line."""
        self.counts[result.status] += 1
        if not result.done and len(self.failed_lines) < _SHOWN_FAILURES:
            self.failed_lines.append(result.line)

    @property
    def processed(self) -> int:
        """Lines processed so far, done (created, exists, completed) or failed."""
        return sum(self.counts.values())

    def record(self) -> dict[str, Any]:
        """The summary object ``--json`` prints last."""
        return {
            "command": "bulk",
            "ok": self.counts["failed"] == 0 and self.processed == self.total,
            "summary": True,
            "lines": self.total,
            "processed": self.processed,
            **self.counts,
            "failed_lines": list(self.failed_lines),
            "seconds": round(time.monotonic() - self.started, 3),
        }

    def text(self) -> str:
        """The summary line printed last."""
        c = self.counts
        text = (
            f"bulk: {self.processed} of {self.total} lines processed: {c['created']} created, "
            f"{c['exists']} exists already, {c['completed']} completed (an earlier run's key), "
            f"{c['failed']} failed"
        )
        return text + (f" (lines {_lines(self)})" if self.failed_lines else "")


def _lines(summary: Summary) -> str:
    more = summary.counts["failed"] - len(summary.failed_lines)
    return ", ".join(map(str, summary.failed_lines)) + (f" and {more} more" if more > 0 else "")


class _Progress:
    """A one-line progress bar on a terminal, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO | None, summary: Summary, enabled: bool) -> None:
        self.stream = stream
        self.summary = summary
        self.enabled = enabled and stream is not None
        self._drawn = 0.0

    def update(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        s = self.summary
        total = max(s.total, 1)
        filled = int(30 * s.processed / total)
        rate = s.processed / max(now - s.started, 1e-9)
        bar = "#" * filled + "." * (30 - filled)
        self._put(f"\r[{bar}] {s.processed}/{s.total} {rate:6.1f}/s failed {s.counts['failed']} ")

    def clear(self) -> None:
        if self.enabled:
            self._put("\r" + " " * 78 + "\r")

    def _put(self, text: str) -> None:
        try:
            assert self.stream is not None
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False


def _say(stream: TextIO | None, line: str) -> None:
    if stream is None:
        return
    try:
        stream.write(scrub(line) + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def _check(path: str, fmt: str | None, out: Output, api_id: str | None = None) -> int:
    """Validate the whole file before anything is sent; return its number of lines."""
    count, errors = check_file(
        path,
        format=fmt,  # type: ignore[arg-type]
        max_errors=_SHOWN_INVALID,
        api_id=api_id,
    )
    if errors:
        for error in errors:
            _say(out.stderr, f"invalid {error.field}: {error.problem}")
        first = errors[0]
        raise InvalidInputError(
            "file",
            f"{len(errors)}{'+' if len(errors) >= _SHOWN_INVALID else ''} invalid line(s), the "
            f"first at {first.field} ({first.problem}); nothing was sent",
        )
    return count


def _dry_run(out: Output, total: int, *, as_json: bool) -> None:
    """``--dry-run``: the file was checked whole; say so, and send nothing."""
    if as_json:
        out.result(
            {"command": "bulk", "ok": True, "summary": True, "dry_run": True, "lines": total}
        )
    else:
        _say(out.stdout, f"bulk: {total} lines checked, all valid; nothing was sent (--dry-run)")


def run(args: argparse.Namespace, out: Output) -> None:
    """Run ``bulk`` with the parsed ``args``; raise for a failure exit (see the module)."""
    # The store and the Unkey client are built for --concurrency threads at once.
    with lock_file(args.file) as locked, app.pooled(args.concurrency):
        _run(args, out, locked)


def _run(args: argparse.Namespace, out: Output, locked: bool) -> None:
    api_id: str | None = getattr(args, "api_id", None)
    total = _check(args.file, args.format, out, api_id)
    if getattr(args, "dry_run", False):
        _dry_run(out, total, as_json=args.json)
        return
    store = app.store_from_env(args.store)
    summary = Summary(total=total)
    stderr = out.stderr
    show = not args.json and not args.no_progress and stderr is not None and stderr.isatty()
    progress = _Progress(stderr, summary, show)
    try:
        with app.unkey_from_env() as unkey:
            results = provision_many(
                unkey,
                store,
                read_lines(args.file, format=args.format, api_id=api_id),
                concurrency=args.concurrency,
                mode=args.mode,
                store_writes_per_second=args.store_writes_per_second,
                # Holding the file's lock, no other run of this file can be alive: what an
                # earlier run of it left half done is finished now, not after 10 minutes.
                exclusive=locked,
            )
            for result in results:
                summary.add(result)
                if args.json:
                    out.result(line_record(result))
                elif not result.done:
                    progress.clear()
                    key = f" (key {result.key_id})" if result.key_id else ""
                    _say(out.stdout, f"line {result.line} failed{key}: {result.message}")
                progress.update()
    finally:
        progress.clear()
        if args.json:
            out.result(summary.record())
        else:
            _say(out.stdout, summary.text())
    failed = summary.counts["failed"]
    if not failed:
        return
    if failed < summary.processed:
        raise BulkPartialFailure(
            f"{failed} of {total} lines failed (lines {_lines(summary)}); the others are "
            "done: run the same command again to retry the failed lines"
        )
    raise BulkFailedError(
        f"all {failed} lines failed (lines {_lines(summary)}); "
        "run the same command again to retry them"
    )
