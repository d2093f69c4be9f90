"""Soak: 1,000 alert posts over real HTTP → exact ticket, occurrence and comment counts, no duplicates.

A burst of 50 identical posts of one new alert (all at once), then 950 posts from 8 client threads:
50 alerts (Alertmanager with and without fingerprints, and Grafana) firing repeatedly, some resolving,
some resolved twice, single-alert and group notifications. Auto-resolve is on, so a recovered alert's
ticket is closed and its next firing opens a new incident (``#2``, ``#3`` ...). Each alert belongs to
one client thread, so its own posts arrive in order; the expected counts come from a small model of
the documented rules (docs/alerts.md).
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from sqlalchemy import func, select
from starlette.applications import Starlette

from lib import api
from lib.alerts.intake import AlertSettings, alert_key
from lib.alerts.parse import parse_alert_payload
from lib.db import read_session
from lib.models import Ticket, TicketEvent

pytestmark = pytest.mark.slow

TOKEN = "soak-token-" + "z" * 24
CLIENTS = 8
ALERTS = 50
BURST = 50
TOTAL_POSTS = 1000
TIME_LIMIT_S = 240  # per phase: the bound that stops a hung run, not a speed target


def serve(app: Starlette) -> tuple[uvicorn.Server, threading.Thread, socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn-soak")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread, sock


@pytest.fixture
def port(engine) -> Iterator[int]:
    api.configure(engine, token=TOKEN, alert_settings=AlertSettings(auto_resolve=True))
    uv, thread, sock = serve(Starlette(routes=api.routes))
    try:
        yield sock.getsockname()[1]
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()
        api.reset()


# --- the workload -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakAlert:
    index: int
    kind: str  # "alertmanager" | "grafana"
    with_fingerprint: bool

    @property
    def labels(self) -> dict[str, str]:
        return {"alertname": f"Soak{self.index % 7}", "instance": f"host{self.index:02d}",
                "severity": ("critical", "warning", "info")[self.index % 3]}

    def raw(self, status: str) -> dict:
        alert = {"status": status, "labels": self.labels,
                 "annotations": {"summary": f"Soak alert {self.index}", "description": "soak test"},
                 "startsAt": "2024-05-01T10:00:00Z",
                 "endsAt": "2024-05-01T10:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"}
        if self.with_fingerprint:
            alert["fingerprint"] = f"soak{self.index:04d}"
        return alert


def body(kind: str, raws: list[dict]) -> bytes:
    status = "firing" if any(r["status"] == "firing" for r in raws) else "resolved"
    if kind == "grafana":
        return json.dumps({"receiver": "helpdesk", "status": status, "orgId": 1, "title": "[FIRING] soak",
                           "state": "alerting", "alerts": raws}).encode()
    return json.dumps({"version": "4", "receiver": "helpdesk", "groupKey": "{}:{}", "status": status,
                       "alerts": raws}).encode()


@dataclass
class Model:
    """The documented rules, per alert, with auto-resolve on and nobody taking the tickets."""

    tickets: list[int] = field(default_factory=list)  # occurrences per incident ticket, in order
    open: bool = False
    recovered: bool = False
    notes: int = 0
    closes: int = 0
    ignored: int = 0

    def apply(self, status: str) -> None:
        if status == "firing":
            if self.open:
                self.tickets[-1] += 1
            else:
                self.tickets.append(1)
                self.open = True
            self.recovered = False
        elif not self.tickets or self.recovered:
            self.ignored += 1
        else:
            self.notes += 1
            self.recovered = True
            if self.open:
                self.closes += 1
                self.open = False


def workload(seed: int = 20240501) -> tuple[list[list[bytes]], dict[str, Model], list[SoakAlert]]:
    """Per client thread, its posts in order; the expected outcome per alert key."""
    rng = random.Random(seed)
    alerts = [SoakAlert(i, "grafana" if i % CLIENTS in (0, 1) else "alertmanager", with_fingerprint=i % 4 != 3)
              for i in range(ALERTS)]
    owned = [[a for a in alerts if a.index % CLIENTS == c] for c in range(CLIENTS)]
    models = {a.index: Model() for a in alerts}
    posts: list[list[bytes]] = [[] for _ in range(CLIENTS)]
    for n in range(TOTAL_POSTS - BURST):
        client = n % CLIENTS
        group = owned[client]
        chosen = rng.sample(group, k=1 if rng.random() < 0.8 else min(len(group), rng.randint(2, 4)))
        raws = []
        for alert in chosen:
            m = models[alert.index]
            firing_now = m.tickets and m.open and not m.recovered
            status = ("resolved" if rng.random() < 0.2 else "firing") if firing_now else (
                "firing" if rng.random() < 0.85 else "resolved")
            m.apply(status)
            raws.append(alert.raw(status))
        posts[client].append(body(chosen[0].kind, raws))
    by_key: dict[str, Model] = {}
    for alert in alerts:
        (parsed,) = parse_alert_payload(body(alert.kind, [alert.raw("firing")]))
        by_key[alert_key(parsed.fingerprint)] = models[alert.index]
    return posts, by_key, alerts


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, data: bytes) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        try:
            self.conn.request("POST", path, body=data, headers=headers)
            resp = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError):  # keep-alive connection dropped: once more
            self.conn.close()
            self.conn.request("POST", path, body=data, headers=headers)
            resp = self.conn.getresponse()
        return resp.status, json.loads(resp.read())

    def close(self) -> None:
        self.conn.close()


def test_a_thousand_alert_posts(port, engine):
    posts, expected, _alerts = workload()
    assert sum(len(p) for p in posts) + BURST == TOTAL_POSTS
    failures: list[str] = []
    totals: Counter[str] = Counter()
    lock = threading.Lock()

    def run(batch: list[bytes], start: threading.Barrier | None) -> None:
        client = Client(port)
        try:
            if start is not None:
                start.wait(30)
            for data in batch:
                status, reply = client.post("/api/alerts", data)
                with lock:
                    if status != 200:
                        failures.append(f"{status}: {reply}")
                    else:
                        totals.update({k: v for k, v in reply.items() if isinstance(v, int)})
        finally:
            client.close()

    burst_body = body("alertmanager", [SoakAlert(999, "alertmanager", True).raw("firing")])
    started = time.perf_counter()
    # 1. An Alertmanager burst: 50 identical posts of a new alert, all at once.
    barrier = threading.Barrier(BURST)
    threads = [threading.Thread(target=run, args=([burst_body], barrier)) for _ in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIME_LIMIT_S)
    burst_done = time.perf_counter()
    # 2. The mix, 8 clients.
    threads = [threading.Thread(target=run, args=(batch, None)) for batch in posts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIME_LIMIT_S)
    elapsed = time.perf_counter() - started
    # Bounded in time (the joins), but not timed: a busy machine is slower, never wrong. The rate is printed
    # for the log; bench/ measures speed.
    assert not any(t.is_alive() for t in threads), f"clients still posting after {TIME_LIMIT_S} s"
    assert not failures, failures[:5]
    rate = TOTAL_POSTS / elapsed
    print(f"\nalert soak ({engine.dialect.name}): {TOTAL_POSTS} posts in {elapsed:.1f} s = {rate:.0f} posts/s "
          f"(burst of {BURST}: {burst_done - started:.2f} s)")

    with read_session(engine) as s:
        rows = s.execute(select(Ticket.id, Ticket.external_ref, Ticket.status, Ticket.occurrences, Ticket.channel)
                         .order_by(Ticket.id)).all()
        kinds = dict(s.execute(select(TicketEvent.kind, func.count()).group_by(TicketEvent.kind)).all())
        per_ticket_alert_events = dict(s.execute(
            select(TicketEvent.ticket_id, func.count()).where(TicketEvent.kind == "alert")
            .group_by(TicketEvent.ticket_id)).all())

    # The burst: one ticket, fifty occurrences.
    burst = [r for r in rows if r.external_ref == "soak0999"]
    assert len(burst) == 1 and burst[0].occurrences == BURST
    assert per_ticket_alert_events[burst[0].id] == BURST - 1

    # The mix: exactly the model's tickets, occurrences and notes; never two open tickets for one alert.
    by_series: dict[str, list] = {}
    for r in rows:
        key, _, number = r.external_ref.partition("#")
        by_series.setdefault(key, []).append((int(number or 1), r))
    assert len({r.external_ref for r in rows}) == len(rows)
    assert all(r.channel == "alert" for r in rows)
    for key, model in expected.items():
        series = sorted(by_series.get(key, []), key=lambda pair: pair[0])
        assert [n for n, _ in series] == list(range(1, len(model.tickets) + 1)), key
        assert [r.occurrences for _, r in series] == model.tickets, key
        assert sum(r.status != "closed" for _, r in series) == (1 if model.open else 0), key
        for _, r in series:
            assert per_ticket_alert_events.get(r.id, 0) == r.occurrences - 1
    mix_tickets = sum(len(m.tickets) for m in expected.values())
    assert len(rows) == mix_tickets + 1
    assert set(by_series) <= set(expected) | {"soak0999"}
    occurrences = sum(sum(m.tickets) for m in expected.values())
    assert kinds.get("created") == len(rows)
    assert kinds.get("alert") == occurrences - mix_tickets + BURST - 1
    assert kinds.get("internal_note") == sum(m.notes for m in expected.values())
    assert kinds.get("closed") == sum(m.closes for m in expected.values())
    # What the server reported adds up to the same.
    assert totals["created"] == len(rows)
    assert totals["recovered"] == kinds["internal_note"]
    assert totals["ignored"] == sum(m.ignored for m in expected.values())
    assert totals["occurrences"] == kinds["alert"]
