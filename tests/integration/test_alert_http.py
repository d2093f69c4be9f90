"""The alert webhook over real HTTP: uvicorn serving lib.api.routes on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import func, select, text
from starlette.applications import Starlette

from lib import api
from lib.alerts.intake import AlertSettings
from lib.alerts.parse import MAX_BODY_BYTES
from lib.db import read_session, transaction
from lib.models import Ticket, TicketEvent, ticket_ref
from tests.conftest import wait_for_lock_waiter

TOKEN = "test-alert-token-0123456789abcdef"
ALERTS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "alerts"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Server:
    host: str
    port: int

    def request(self, method: str, path: str, body: bytes | None = None, *, token: str | None = TOKEN,
                headers: dict[str, str] | None = None, timeout: float = 30) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            if token is not None:
                all_headers["Authorization"] = f"Bearer {token}"
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def post(self, path: str, body: bytes, **kwargs) -> Reply:
        return self.request("POST", path, body, **kwargs)


def serve(app: Starlette) -> tuple[uvicorn.Server, threading.Thread, socket.socket]:
    """Run uvicorn on 127.0.0.1 on a free port (a socket bound here, so no port race) in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn-test")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread, sock


@pytest.fixture
def server(engine) -> Iterator[Server]:
    api.configure(engine, token=TOKEN, alert_settings=AlertSettings())
    uv, thread, sock = serve(Starlette(routes=api.routes))
    try:
        yield Server("127.0.0.1", sock.getsockname()[1])
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()
        api.reset()
    assert not thread.is_alive(), "uvicorn did not stop"


def am_body(name: str = "DiskFull", *, status: str = "firing", instance: str = "db1") -> bytes:
    return json.dumps({
        "version": "4", "receiver": "helpdesk", "groupKey": "{}:{}", "status": status,
        "alerts": [{"status": status, "labels": {"alertname": name, "instance": instance, "severity": "critical"},
                    "annotations": {"summary": f"{name} on {instance}"}, "startsAt": "2024-05-01T10:00:00Z"}],
    }).encode()


def counts(engine) -> tuple[int, int]:
    with read_session(engine) as s:
        return (s.scalar(select(func.count()).select_from(Ticket)),
                s.scalar(select(func.count()).select_from(TicketEvent)))


def shared(name: str) -> bytes:
    path = ALERTS_DIR / name
    if not path.is_file():
        pytest.skip(f"shared testdata not found: {path} (it sits beside the project in CI)")
    return path.read_bytes()


# --- happy paths ------------------------------------------------------------------------------


def test_health(server):
    reply = server.request("GET", "/api/health", token=None)
    assert (reply.status, reply.json) == (200, {"status": "ok", "database": "ok"})


def test_alertmanager_post_makes_a_ticket_and_a_repeat_counts(server, engine):
    body = shared("alertmanager_msteams_prom_post_request.json")
    first = server.post("/api/alerts/alertmanager", body)
    assert first.status == 200, first.body
    assert first.headers["content-type"] == "application/json"
    assert (first.json["created"], first.json["updated"], first.json["tickets"]) == (1, 0, ["HD-000001"])
    second = server.post("/api/alerts", body)  # the generic endpoint recognises it too
    assert (second.status, second.json["created"], second.json["updated"], second.json["tickets"]) == (
        200, 0, 1, ["HD-000001"])
    with read_session(engine) as s:
        ticket = s.scalars(select(Ticket)).one()
        assert (ticket.channel, ticket.summary, ticket.occurrences) == ("alert", "Server High Memory usage", 2)


def test_every_shared_payload_is_accepted(server, engine):
    expected = {"alertmanager_msteams_large_19_alerts.json": ("alertmanager", 19),
                "alertmanager_msteams_prom_post_request.json": ("alertmanager", 1),
                "alertmanager_official_exec_testdata_success.json": ("alertmanager", 1),
                "grafana_webhook_docs_firing.json": ("grafana", 2)}
    for name, (kind, n) in expected.items():
        reply = server.post(f"/api/alerts/{kind}", shared(name))
        assert reply.status == 200, (name, reply.body)
        assert reply.json["created"] == len(reply.json["tickets"]) == n, name
    assert counts(engine)[0] == 23


def test_resolved_post_adds_a_recovery_note(server, engine):
    server.post("/api/alerts", am_body("Ping"))
    reply = server.post("/api/alerts", am_body("Ping", status="resolved"))
    assert (reply.status, reply.json["recovered"], reply.json["updated"]) == (200, 1, 1)
    with read_session(engine) as s:
        notes = s.scalars(select(TicketEvent.body).where(TicketEvent.kind == "internal_note")).all()
    assert len(notes) == 1 and notes[0].startswith("Recovered at ")


# --- refusals: nothing written ----------------------------------------------------------------


def test_missing_or_wrong_token_is_refused(server, engine):
    body = am_body()
    for token, headers, message in (
        (None, {}, "missing bearer token"),
        ("not-the-token", {}, "wrong bearer token"),
        (None, {"Authorization": f"Basic {TOKEN}"}, "wrong bearer token"),
        (TOKEN + "x", {}, "wrong bearer token"),
    ):
        reply = server.post("/api/alerts/alertmanager", body, token=token, headers=headers)
        assert reply.status == 401, token
        assert message in reply.json["error"]
        assert reply.headers["www-authenticate"].startswith("Bearer")
    assert counts(engine) == (0, 0)


def test_no_token_configured_disables_the_webhook(server, engine):
    api.configure(token=None)
    reply = server.post("/api/alerts/alertmanager", am_body())
    assert reply.status == 503
    assert reply.json["error"].startswith("alert webhook disabled: set alert_token")
    assert server.post("/api/alerts", am_body(), token=None).status == 503
    assert counts(engine) == (0, 0)


def test_token_from_the_environment(server, engine, monkeypatch):
    api.reset()
    api.configure(engine, alert_settings=AlertSettings())
    monkeypatch.setenv("HELPDESK_ALERT_TOKEN", "token-from-env")
    assert server.post("/api/alerts", am_body(), token=TOKEN).status == 401
    assert server.post("/api/alerts", am_body(), token="token-from-env").status == 200


@pytest.mark.parametrize("body, message", [
    (b'{"version": "4", "alerts": [', "body is not valid JSON"),
    (b"", "body is empty"),
    (b"[1, 2]", "body must be a JSON object"),
    (b'{"hello": "world"}', "unrecognised webhook body"),
    (b'{"version": "4", "receiver": "x", "alerts": {"a": 1}}', "'alerts' must be a list"),
    (b'{"version": "4", "receiver": "x", "alerts": [{"status": "exploded", "labels": {}}]}', "'status' must be"),
    (b'\xff\xfe{"version": "4"}', "not valid UTF-8"),
])
def test_malformed_bodies_are_refused_with_the_reason(server, engine, body, message):
    reply = server.post("/api/alerts/alertmanager", body)
    assert reply.status == 400, reply.body
    assert message in reply.json["error"]
    assert counts(engine) == (0, 0)


def test_a_body_for_the_other_sender_is_refused(server, engine):
    reply = server.post("/api/alerts/alertmanager", shared("grafana_webhook_docs_firing.json"))
    assert reply.status == 400 and "/api/alerts/grafana" in reply.json["error"]
    reply = server.post("/api/alerts/grafana", am_body())
    assert reply.status == 400 and "/api/alerts/alertmanager" in reply.json["error"]
    assert counts(engine) == (0, 0)


def test_oversize_bodies_are_refused(server, engine):
    limit = MAX_BODY_BYTES
    padding = json.dumps({"version": "4", "receiver": "x", "alerts": [], "pad": "x" * limit}).encode()
    assert len(padding) > limit
    reply = server.post("/api/alerts/alertmanager", padding)
    assert reply.status == 413 and "too large" in reply.json["error"]
    # A declared length over the limit is refused before the body is read.
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.putrequest("POST", "/api/alerts")
        conn.putheader("Authorization", f"Bearer {TOKEN}")
        conn.putheader("Content-Length", str(50 * limit))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413
    finally:
        conn.close()
    # Chunked, no length: counted as it arrives.
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        chunks = iter([padding[i:i + 65536] for i in range(0, len(padding), 65536)])
        conn.request("POST", "/api/alerts", body=chunks, encode_chunked=True,
                     headers={"Authorization": f"Bearer {TOKEN}", "Transfer-Encoding": "chunked"})
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    assert counts(engine) == (0, 0)
    assert server.post("/api/alerts", am_body()).status == 200  # the server is fine afterwards


def test_wrong_method_is_refused(server):
    assert server.request("GET", "/api/alerts/alertmanager").status == 405


# --- concurrency ------------------------------------------------------------------------------


def test_ten_concurrent_posts_of_a_new_alert_make_one_ticket(server, engine):
    body = am_body("Burst", instance="edge1")
    barrier = threading.Barrier(10)
    replies: list[Reply] = []
    lock = threading.Lock()

    def post() -> None:
        barrier.wait(10)
        reply = server.post("/api/alerts/alertmanager", body)
        with lock:
            replies.append(reply)

    threads = [threading.Thread(target=post) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.status for r in replies] == [200] * 10, [r.body for r in replies if r.status != 200]
    assert sum(r.json["created"] for r in replies) == 1
    assert sum(r.json["updated"] for r in replies) == 9
    with read_session(engine) as s:
        ticket = s.scalars(select(Ticket)).one()
        assert ticket.occurrences == 10
        only = ticket_ref(ticket.id)
    # Every reply names that one ticket. (Its number may be HD-000002 on PostgreSQL: a post that lost the race
    # to insert it used up a sequence value.)
    assert {tuple(r.json["tickets"]) for r in replies} == {(only,)}


def test_database_work_does_not_block_the_event_loop(server, engine):
    """While an alert post waits for a database lock, the server still answers other requests."""
    done: list[Reply] = []
    with transaction(engine) as s:
        if engine.dialect.name == "postgresql":
            s.execute(text("LOCK TABLE tickets IN EXCLUSIVE MODE"))  # reads pass, writes wait
        else:
            s.execute(text("SELECT 1"))  # starts BEGIN IMMEDIATE: the write lock is ours until the block ends
        poster = threading.Thread(target=lambda: done.append(server.post("/api/alerts", am_body("Held"))))
        poster.start()
        if not wait_for_lock_waiter(engine):  # SQLite shows no lock waiter: give the post time to arrive
            threading.Event().wait(0.3)
        assert not done, "the post should be waiting for the lock"
        # The event loop answers while the post's thread waits for the lock (a blocked loop could not).
        health = server.request("GET", "/api/health", token=None, timeout=60)
        assert health.status == 200
        assert not done, "the post answered while the lock was still held"
    poster.join(30)
    assert done and done[0].status == 200 and done[0].json["created"] == 1


def test_server_side_problems_answer_503_so_the_sender_retries(server, engine, monkeypatch):
    api.reset()
    api.configure(engine, token=TOKEN)
    monkeypatch.setenv("HELPDESK_ALERT_SEVERITY_MAP", "warning=urgent")
    reply = server.post("/api/alerts", am_body())
    assert reply.status == 503 and "alert webhook misconfigured" in reply.json["error"]
    assert "alert_severity_map" in reply.json["error"]
    monkeypatch.delenv("HELPDESK_ALERT_SEVERITY_MAP")
    with transaction(engine) as s:
        s.execute(text("UPDATE categories SET active = :off"), {"off": False})
    reply = server.post("/api/alerts", am_body())
    assert reply.status == 503 and "no active category" in reply.json["error"]
    assert counts(engine) == (0, 0)


def _half_open(server: Server, declared: int = 1000, sent: bytes = b'{"version": ') -> socket.socket:
    """A post whose body stops half-way (the sender hangs on to the connection)."""
    sock = socket.create_connection((server.host, server.port), timeout=30)
    sock.sendall((f"POST /api/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n").encode() + sent)
    return sock


def test_a_body_that_stops_half_way_is_answered_408_and_let_go(server, engine, monkeypatch):
    monkeypatch.setattr(api, "BODY_SECONDS", 0.5)
    sock = _half_open(server)
    chunks = []
    try:
        while chunk := sock.recv(4096):  # the answer, until the server closes (the socket's timeout bounds it)
            chunks.append(chunk)
    finally:
        sock.close()
    reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.1 408") and "did not arrive within 0.5 s" in reply
    assert counts(engine) == (0, 0)
    assert server.post("/api/alerts", am_body()).status == 200


def test_too_many_posts_at_once_are_refused_with_retry_after(server, engine, monkeypatch):
    monkeypatch.setattr(api, "MAX_IN_FLIGHT", 3)
    held = [_half_open(server) for _ in range(3)]
    try:
        deadline = time.monotonic() + 30
        while True:  # the three are being received once the server counts them: wait for that state
            reply = server.post("/api/alerts", am_body())
            if reply.status == 503 or time.monotonic() > deadline:
                break
        assert reply.status == 503 and "busy" in reply.json["error"]
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 30
    while server.post("/api/alerts", am_body()).status != 200:  # the slots free up as the senders go
        assert time.monotonic() < deadline, "the server never took posts again"
        time.sleep(0.05)
