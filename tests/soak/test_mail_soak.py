"""Soak: 1,000 generated inbound mails through the batch route, twice; exact counts, nothing doubled.

Bounded for CI (well under a minute per engine on the project's 2-core machines).
"""

from __future__ import annotations

import random
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lib.db import read_session
from lib.mail.inbound import ingest_files
from lib.models import OutboxMail, ProcessedMail, QuarantinedMail, Ticket, TicketEvent
from lib.workflow import EventKind

pytestmark = pytest.mark.slow

NEW, REPLIES, AUTO, GARBAGE = 600, 340, 40, 20
TOTAL = NEW + REPLIES + AUTO + GARBAGE


def _mail(n: int, *, sender: str, subject: str, body: str, in_reply_to: str | None = None,
          references: str | None = None, auto: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "helpdesk@desk.example"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<soak-{n}@example.com>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(body)
    return msg.as_bytes()


def generate(folder: Path, seed: int = 7) -> None:
    """NEW new requests, then replies (threaded by In-Reply-To or References), auto-replies and garbage, mixed."""
    rng = random.Random(seed)
    items: list[bytes] = []
    originals: list[tuple[str, str]] = []  # (message id, sender)
    for n in range(NEW):
        sender = f"user{n % 250}@example.com"  # many requesters write several times
        items.append(_mail(n, sender=f"User {n % 250} <{sender}>", subject=f"Problem number {n} ({rng.random():.4f})",
                           body=f"Request {n}: something is wrong.\nDetails follow.\n"))
        originals.append((f"<soak-{n}@example.com>", sender))
    later: list[bytes] = []
    for k in range(REPLIES):
        mid, sender = originals[rng.randrange(NEW)]
        threading = {"in_reply_to": mid} if k % 2 else {"references": f"<unrelated-{k}@x.example> {mid}"}
        later.append(_mail(NEW + k, sender=sender, subject="Re: my problem",
                           body=f"Reply {k}.\n\nOn Mon, 1 Jun 2026, Help desk wrote:\n> quoted\n", **threading))
    for k in range(AUTO):
        mid, sender = originals[rng.randrange(NEW)]
        later.append(_mail(NEW + REPLIES + k, sender=sender, subject="Out of office", body="Away.",
                           in_reply_to=mid, auto=True))
    for k in range(GARBAGE):
        later.append(bytes(rng.randrange(256) for _ in range(40)).replace(b":", b"") + f" junk {k}".encode())
    rng.shuffle(later)
    for index, raw in enumerate(items + later):
        (folder / f"{index:05d}.eml").write_bytes(raw)


def counts(engine) -> dict[str, int]:
    with read_session(engine) as s:
        def n(model, *where) -> int:
            return s.scalar(select(func.count()).select_from(model).where(*where)) or 0

        return {
            "tickets": n(Ticket),
            "distinct_refs": s.scalar(select(func.count(func.distinct(Ticket.external_ref)))) or 0,
            "comments": n(TicketEvent, TicketEvent.kind == EventKind.INBOUND_EMAIL.value),
            "auto_notes": n(TicketEvent, TicketEvent.kind == EventKind.INTERNAL_NOTE.value),
            "quarantined": n(QuarantinedMail),
            "outbox": n(OutboxMail),
            "processed": n(ProcessedMail),
        }


def test_thousand_mails_through_the_batch_route(engine, tmp_path):
    folder = tmp_path / "mails"
    folder.mkdir()
    generate(folder)
    assert len(list(folder.iterdir())) == TOTAL

    started = time.monotonic()
    summary = ingest_files(engine, [folder])
    elapsed = time.monotonic() - started
    assert not summary.errors
    assert dict(summary.counts) == {"ticket": NEW, "comment": REPLIES, "ignored_auto": AUTO, "quarantined": GARBAGE}
    expected = {"tickets": NEW, "distinct_refs": NEW, "comments": REPLIES, "auto_notes": AUTO,
                "quarantined": GARBAGE, "outbox": NEW, "processed": TOTAL}
    assert counts(engine) == expected
    print(f"\n{engine.dialect.name}: {TOTAL} mails in {elapsed:.1f} s ({TOTAL / elapsed:.0f} mails/s)")

    again = ingest_files(engine, [folder])
    assert dict(again.counts) == {"duplicate": TOTAL} and not again.errors
    assert counts(engine) == expected
