"""How long each page run takes on the app server: runs slower than ``slow_page_ms`` are logged.

A page run is one run of ``app.py``: the login gate, the navigation and the page itself, as Streamlit runs it
for a session (a fragment's own rerun is not a page run). The log line names the page, its time and how the
run ended, with the database statements the run sent and the CPU time used, e.g. ``page run: ticket 38.2 ms,
21 queries, 30.5 ms cpu, 36.0 ms process cpu``; with ``slow_page_ms = 0`` every run is logged, which is how
``bench/bench_server_pages.py`` reads the server's own time beside what the browser shows. The CPU times do not
count the time a run waits (for the database, or for a core while the browser or another process has it), so
they move less with the machine's load than the wall time.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lib.config import get_settings

log = logging.getLogger("helpdesk.pages")
if not log.handlers:
    # Streamlit configures only its own loggers: without a handler these lines would be lost below WARNING.
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False

#: The line's form, which the page benchmark reads back: page, ms, statements sent, the CPU time the run's own
#: thread used and the CPU time the whole server process used meanwhile (its other threads too: the event loop
#: sending the run's elements to the browser, other sessions, the worker), and how the run ended.
LINE = "page run: %s %.1f ms, %d queries, %.1f ms cpu, %.1f ms process cpu%s"


@dataclass
class Run:
    """The page this run serves, once the navigation has chosen it, and the statements it sent (counted by
    lib.ui.core.page_reads)."""

    page: str = "-"
    queries: int = 0


@contextmanager
def timed(threshold_ms: float | None = None) -> Iterator[Run]:
    """Time the ``with`` body (a page run) and log it when it took longer than the threshold.

    Streamlit ends a run early by raising (``st.rerun``, ``st.stop``): such a run is logged too, marked."""
    threshold = get_settings().slow_page_ms if threshold_ms is None else threshold_ms
    run = Run()
    started, cpu, process = time.perf_counter(), time.thread_time(), time.process_time()
    ended = ""
    try:
        yield run
    except BaseException as exc:
        ended = f" (ended by {type(exc).__name__})"
        raise
    finally:
        ms = (time.perf_counter() - started) * 1000
        if ms > threshold or threshold <= 0:
            log.info(LINE, run.page, ms, run.queries, (time.thread_time() - cpu) * 1000,
                     (time.process_time() - process) * 1000, ended)


def parse(line: str) -> tuple[str, float] | None:
    """``(page, ms)`` from a logged line, or None for any other line."""
    marker = "page run: "
    at = line.find(marker)
    if at < 0:
        return None
    parts = line[at + len(marker):].split()
    if len(parts) < 3 or parts[2].rstrip(",") != "ms":
        return None
    try:
        return parts[0], float(parts[1])
    except ValueError:
        return None


def queries(line: str) -> int | None:
    """The statements a logged run sent, or None for any other line."""
    if parse(line) is None:
        return None
    parts = line[line.find("page run: ") + len("page run: "):].split()
    if len(parts) < 5 or parts[4].rstrip(",") != "queries":
        return None
    try:
        return int(parts[3])
    except ValueError:
        return None


def cpu(line: str) -> tuple[float, float] | None:
    """The CPU ms of a logged run: its own thread's, and the whole server process's meanwhile (None for any
    other line)."""
    if queries(line) is None:
        return None
    parts = line[line.find("page run: ") + len("page run: "):].split()
    if len(parts) < 12 or parts[6] != "ms" or parts[7] != "cpu," or parts[10:12] != ["process", "cpu"]:
        return None
    try:
        return float(parts[5]), float(parts[8])
    except ValueError:
        return None
