"""Reading what a pod's process wrote: its termination message, the log tail that stands in for
one (``FallbackToLogsOnError``), and the log as ``kubectl logs`` asks for it.

A pod's stdout and stderr go, unchanged, to ``STATE/pods/NAMESPACE_NAME.log``; no line carries
a time of its own. So the kubelet log API's options are honoured as far as that file allows:

* ``follow``: stream what the process writes until it has ended (then everything it wrote has
  been sent) or the client left;
* ``tailLines`` (the last N lines; an unterminated last line counts) and ``limitBytes`` (at most
  N bytes in all, follow or not);
* ``previous``: no container is ever restarted, so there is no previous one: an error, as the
  kubelet answers for a container that never restarted;
* ``timestamps``, ``sinceSeconds``, ``sinceTime``: an error that says why (nothing recorded when
  a line was written), rather than output that looks right and is not.

Everything here is pure or reads a file; the HTTP side is in kubelet_api.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .common import FALLBACK_LOG_BYTES, FALLBACK_LOG_LINES

CHUNK = 64 * 1024


def read_limited(path: Path, limit: int) -> str:
    """The first ``limit`` bytes of a file as text ("" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode(errors="replace")
    except OSError:
        return ""


def fallback_message(tail: bytes) -> str:
    """The termination message ``FallbackToLogsOnError`` makes of the log's last bytes."""
    lines = tail.decode(errors="replace").splitlines()[-FALLBACK_LOG_LINES:]
    return "\n".join(lines)


def log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - FALLBACK_LOG_BYTES))
            data = f.read()
    except OSError:
        return ""
    return fallback_message(data)


class LogRequestError(Exception):
    """A log request that cannot be answered; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class LogQuery:
    follow: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None


def _flag(params: Mapping[str, Sequence[str]], name: str) -> bool:
    # As the API machinery reads a bool query parameter: anything but "", "0" and "false".
    values = params.get(name)
    if not values:
        return False
    value = values[0]
    return value not in ("", "0") and value.lower() != "false"


def _count(params: Mapping[str, Sequence[str]], name: str, minimum: int) -> int | None:
    if name not in params:
        return None
    raw = params[name][0]
    try:
        value = int(raw)
    except ValueError:
        raise LogRequestError(400, f"{name}: not an integer: {raw!r}") from None
    if value < minimum:
        raise LogRequestError(400, f"{name} must be at least {minimum}, not {value}")
    return value


def parse_log_query(params: Mapping[str, Sequence[str]], container: str, pod: str) -> LogQuery:
    """The kubelet's ``/containerLogs`` query parameters (``urllib.parse.parse_qs`` form)."""
    if _flag(params, "previous"):
        raise LogRequestError(
            400, f'previous terminated container "{container}" in pod "{pod}" not found'
        )
    if _flag(params, "timestamps"):
        raise LogRequestError(
            400, "timestamps: the dev cluster does not record when a log line was written"
        )
    for name in ("sinceSeconds", "sinceTime"):
        if name in params:
            raise LogRequestError(
                400, f"{name}: the dev cluster does not record when a log line was written"
            )
    return LogQuery(
        follow=_flag(params, "follow"),
        tail_lines=_count(params, "tailLines", 0),
        limit_bytes=_count(params, "limitBytes", 1),
    )


def tail_offset(f: BinaryIO, lines: int) -> int:
    """The offset where the last ``lines`` lines of ``f`` begin (0 when it has fewer)."""
    f.seek(0, os.SEEK_END)
    end = f.tell()
    if lines <= 0:
        return end
    count = 0
    pos = end
    while pos > 0:
        n = min(CHUNK, pos)
        pos -= n
        f.seek(pos)
        data = f.read(n)
        idx = len(data)
        while (idx := data.rfind(b"\n", 0, idx)) >= 0:
            if pos + idx == end - 1:
                continue  # the newline that ends the last line does not begin another
            count += 1
            if count == lines:
                return pos + idx + 1
    return 0


def stream_log(
    f: BinaryIO,
    query: LogQuery,
    write: Callable[[bytes], None],
    wait_more: Callable[[], bool],
) -> int:
    """Copy the log in ``f`` to ``write`` as ``query`` asks; returns the bytes written.

    With ``follow``, at the end of the file ``wait_more()`` is called: it waits a little and
    returns False once the process has ended (what it wrote last is then copied too) and may
    raise to abandon the stream (the client left)."""
    f.seek(tail_offset(f, query.tail_lines) if query.tail_lines is not None else 0)
    budget = query.limit_bytes
    follow = query.follow
    sent = 0
    while budget is None or sent < budget:
        chunk = f.read(CHUNK if budget is None else min(CHUNK, budget - sent))
        if chunk:
            write(chunk)
            sent += len(chunk)
        elif not follow:
            break
        elif not wait_more():
            follow = False
    return sent
