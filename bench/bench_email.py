"""E-mail ingestion benchmark: batch throughput and the latency of one mail through the MTA pipe route.

    .venv/bin/python bench/bench_email.py                  # SQLite in a temporary folder
    .venv/bin/python bench/bench_email.py --runs 5 --mails 1000
    .venv/bin/python bench/bench_email.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

* Batch: ``lib.mail.inbound.ingest_files`` over a folder of generated mails (60 % new requests, 35 % replies
  threaded on them, 5 % auto-replies), one transaction per message as in production; median of the runs.
  Each SQLite run gets a fresh database; on PostgreSQL the runs share the database (fresh Message-IDs).
* Pipe: ``python -m lib.cli ingest-email -`` as a subprocess with one new mail on stdin, as an MTA
  (Postfix ``pipe``/aliases) would run it; wall time including interpreter start-up; median.

Prints a table; never fails on time (the target is >= 50 mails/s on the project's 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.db import make_engine, upgrade_schema  # noqa: E402
from lib.mail.inbound import ingest_files  # noqa: E402


def _mail(mid: str, *, sender: str, subject: str, body: str, in_reply_to: str | None = None,
          auto: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "helpdesk@desk.example"
    msg["Subject"] = subject
    msg["Message-ID"] = mid
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(body)
    return msg.as_bytes()


def generate(folder: Path, total: int, tag: str) -> None:
    new = int(total * 0.6)
    replies = int(total * 0.35)
    auto = total - new - replies
    originals = []
    index = 0

    def write(raw: bytes) -> None:
        nonlocal index
        (folder / f"{index:06d}.eml").write_bytes(raw)
        index += 1

    for n in range(new):
        mid = f"<bench-{tag}-{n}@example.com>"
        sender = f"user{n % 300}@example.com"
        write(_mail(mid, sender=f"User {n % 300} <{sender}>", subject=f"Problem {n}",
                    body=f"Request {n}: the VPN drops every few minutes.\nLaptop model X{n % 7}.\n"))
        originals.append((mid, sender))
    for k in range(replies):
        mid, sender = originals[(k * 7) % new]
        write(_mail(f"<bench-{tag}-r{k}@example.com>", sender=sender, subject="Re: my problem", in_reply_to=mid,
                    body=f"Reply {k}: still happening.\n\nOn Mon, Help desk wrote:\n> quoted text\n"))
    for k in range(auto):
        mid, sender = originals[(k * 11) % new]
        write(_mail(f"<bench-{tag}-a{k}@example.com>", sender=sender, subject="Out of office", body="Away.",
                    in_reply_to=mid, auto=True))


def bench_batch(url: str | None, mails: int, runs: int) -> list[float]:
    rates = []
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="hd-bench-mail-") as tmp:
            folder = Path(tmp) / "mails"
            folder.mkdir()
            generate(folder, mails, f"{uuid.uuid4().hex[:8]}-{run}")
            engine = make_engine(url or f"sqlite:///{tmp}/bench.sqlite3")
            upgrade_schema(engine)
            started = time.perf_counter()
            summary = ingest_files(engine, [folder])
            elapsed = time.perf_counter() - started
            engine.dispose()
            if summary.errors:
                raise SystemExit(f"batch run {run}: {summary.errors[:3]}")
            rates.append(mails / elapsed)
            print(f"  batch run {run + 1}/{runs}: {summary} in {elapsed:.2f} s ({mails / elapsed:.1f} mails/s)",
                  file=sys.stderr)
    return rates


def bench_pipe(url: str | None, runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="hd-bench-pipe-") as tmp:
        url = url or f"sqlite:///{tmp}/pipe.sqlite3"
        upgrade_schema(make_engine(url))
        env = {**os.environ, "HELPDESK_DATABASE_URL": url}
        times = []
        for run in range(runs):
            raw = _mail(f"<pipe-{uuid.uuid4().hex}@example.com>", sender="Pipe User <pipe@example.com>",
                        subject=f"Piped request {run}", body="Sent through the MTA pipe.\n")
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "lib.cli", "ingest-email", "-"], input=raw, cwd=ROOT,
                                  env=env, capture_output=True, timeout=120)
            times.append(time.perf_counter() - started)
            if done.returncode != 0 or b"1 ticket" not in done.stdout:
                raise SystemExit(f"pipe run {run}: exit {done.returncode}: {done.stderr.decode()[-500:]}")
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a fresh SQLite file per run")
    parser.add_argument("--mails", type=int, default=1000, help="mails per batch run (default 1000)")
    parser.add_argument("--runs", type=int, default=3, help="batch runs (default 3)")
    parser.add_argument("--pipe-runs", type=int, default=7, help="pipe route runs (default 7)")
    args = parser.parse_args()

    rates = bench_batch(args.database_url, args.mails, args.runs)
    pipe = bench_pipe(args.database_url, args.pipe_runs)
    engine = (args.database_url or "sqlite").split(":")[0].split("+")[0]
    rows = [
        ("batch throughput (mails/s)", statistics.median(rates), min(rates), max(rates), len(rates)),
        ("pipe route, one mail (ms)", statistics.median(pipe) * 1000, min(pipe) * 1000, max(pipe) * 1000, len(pipe)),
    ]
    print(f"\nE-mail ingestion on {engine}, {args.mails} mails per batch run, {os.cpu_count()} CPUs")
    print(f"{'measure':<30} {'median':>9} {'min':>9} {'max':>9} {'runs':>5}")
    for name, med, low, high, n in rows:
        print(f"{name:<30} {med:>9.1f} {low:>9.1f} {high:>9.1f} {n:>5}")
    verdict = "meets" if statistics.median(rates) >= 50 else "below"
    print(f"target: >= 50 mails/s in a batch ({verdict})")


if __name__ == "__main__":
    main()
