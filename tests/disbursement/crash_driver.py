"""The subprocess side of tests/disbursement/test_crashes.py: runs `ykt` commands and kills itself at a
chosen point.

Started once per test as a fork server: it imports the CLI and the payment modules (never touching the
database), then for each request read from stdin (one JSON line) forks a child that runs one command and
answers one JSON line on stdout. Each child is a real process with its own database connections and
files; it dies by SIGKILL — no cleanup, no rollback, no `finally` — when its `crash_at`-th crash point
is reached, or when the server kills it after `kill_after` seconds.

Crash points, counted in the order the command reaches them:
- before every SQL statement (so inside transactions, between the statements of one unit of work);
- after every commit (between the commit and whatever the command does next: deleting a file);
- inside every write to a bank file or to the message sink (half the bytes written, then death);
- before and after every rename and every deletion of a file, and around each message handed to the sink.

Request:  {"args": ["pay", "export", "FF..."], "crash_at": 17 | null, "crash_on": "after a commit" | null,
           "kill_after": 0.3 | null, "log": path}
          args ["dispatch"]: deliver the outbox to the FileSink of YKT_DATA_DIR, as `ykt worker` does
Answer:   {"signal": 9 | 0, "code": exit code, "points": crash points passed (null if killed),
           "died": the kind of crash point it died at (null: not at one), "died_at": its number, "seconds": t}
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

_passed = 0
_crash_at: int | None = None
_crash_on: str | None = None  # or die at the first point of this kind
_report_fd = -1


def _die(where: str) -> None:
    os.write(_report_fd, f"died:{_passed}:{where}".encode())  # for the test's tally and draws
    os.kill(os.getpid(), signal.SIGKILL)


def _point(where: str) -> None:
    global _passed
    _passed += 1
    if _passed == _crash_at or where == _crash_on:
        _die(where)


def _torn(where: str, write, flush, data) -> None:
    """A write that may be the crash point: then half of it reaches the disk and the process dies."""
    global _passed
    _passed += 1
    if _passed == _crash_at or where == _crash_on:
        write(data[: len(data) // 2])
        flush()
        _die(where)
    write(data)


class _SinkHandle:
    """The message sink's file, its writes being crash points."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        _torn("halfway through a message", self._handle.write, self._handle.flush, data)
        return len(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)


def _install() -> None:
    """Crash points in this (child) process only."""
    import pathlib

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from yikatong.disbursement.bank import files
    from yikatong.notify import notifier

    event.listen(Engine, "before_cursor_execute", lambda *a, **k: _point("before an SQL statement"))
    event.listen(Session, "after_commit", lambda *a, **k: _point("after a commit"))

    def hashed_write(self, data: bytes) -> None:
        self._hash.update(data)
        _torn("halfway through a bank file", self._file.write, self._file.flush, data)

    files.HashedFile.write = hashed_write

    def around(fn, what: str):
        def wrapper(*args, **kwargs):
            _point(f"before {what}")
            result = fn(*args, **kwargs)
            _point(f"after {what}")
            return result
        return wrapper

    os.replace = around(os.replace, "a rename")
    pathlib.Path.unlink = around(pathlib.Path.unlink, "a deletion")
    builtin_open = open
    notifier.open = lambda *a, **k: _SinkHandle(builtin_open(*a, **k))
    notifier.FileSink.send = around(notifier.FileSink.send, "handing a message to the sink")


def _dispatch() -> int:
    from yikatong.core.settings import get_settings
    from yikatong.notify.dispatcher import Dispatcher
    from yikatong.notify.notifier import FileSink

    report = Dispatcher(FileSink(get_settings().data_dir / "outbox" / "messages.jsonl")).run()
    print(f"sent {report.sent} retrying {report.retrying} failed {report.failed} skipped {report.skipped}")
    return 0


def _run(args: list[str]) -> int:
    if args == ["dispatch"]:
        return _dispatch()
    from yikatong.cli import main

    sys.argv = ["ykt", *args]
    try:
        main()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


def _child(request: dict, report_fd: int) -> None:
    global _crash_at, _crash_on, _report_fd
    _report_fd = report_fd
    code = 70
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        _crash_at, _crash_on = request.get("crash_at"), request.get("crash_on")
        _install()
        code = _run(request["args"])
    except BaseException:  # noqa: BLE001 - the parent reads the traceback in the log
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(report_fd, str(_passed).encode())
        os._exit(code)


def _serve() -> None:
    # what every command needs, imported once here instead of in each child
    import yikatong.cli  # noqa: F401
    import yikatong.disbursement.exchange  # noqa: F401
    import yikatong.disbursement.reconcile  # noqa: F401
    import yikatong.notify.dispatcher  # noqa: F401
    from yikatong.core.db import engine

    if engine.cache_info().currsize:
        raise SystemExit("the fork server must not open the database")
    if os.environ.get("YKT_DATABASE_URL", "").startswith("postgresql"):
        import psycopg  # noqa: F401
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        read_fd, write_fd = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(request, write_fd)
        os.close(write_fd)
        kill_after = request.get("kill_after")
        status = None
        if kill_after is not None:
            deadline = started + kill_after
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.002)
            else:
                os.kill(pid, signal.SIGKILL)
                status = None
        if status is None:
            _, status = os.waitpid(pid, 0)
        seconds = time.monotonic() - started
        with os.fdopen(read_fd, "rb") as r:
            passed = r.read().decode()
        killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        print(json.dumps({"signal": killed, "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                          "points": int(passed) if passed.isdigit() else None,
                          "died": passed.split(":", 2)[2] if passed.startswith("died:") else None,
                          "died_at": int(passed.split(":", 2)[1]) if passed.startswith("died:") else None,
                          "seconds": seconds}), flush=True)


if __name__ == "__main__":
    _serve()
