"""One engine per process: the pages, the HTTP routes and the worker share it (one pool, one schema upgrade)."""

from __future__ import annotations

import asyncio
import json
import threading

from sqlalchemy import event
from sqlalchemy.engine import Engine

from lib import api, db, worker
from lib.server_routes import start_worker
from lib.ui import core
from tests.app.conftest import page_test


def test_a_page_a_route_and_a_worker_step_share_one_engine(app_env, staff_app) -> None:
    pools: list[object] = []  # an engine with execution options shares its parent's pool: count pools

    def count(conn) -> None:  # type: ignore[no-untyped-def]
        if conn.engine.pool not in pools:
            pools.append(conn.engine.pool)

    before = db.shared_engines()
    event.listen(Engine, "engine_connect", count)
    try:
        at = page_test("queue.py", "lead")
        at.run()
        assert not at.exception
        api.reset()
        answers: list = []  # the route runs on its own event loop, as the server runs it (not this thread's)
        asker = threading.Thread(target=lambda: answers.append(asyncio.run(api.health(None))))  # type: ignore[arg-type]
        asker.start()
        asker.join(60)
        assert json.loads(answers[0].body)["database"] == "ok"
        stop = start_worker()
        stop()
        report = worker.run_cycle(core.get_engine())
        assert not report.errors
    finally:
        event.remove(Engine, "engine_connect", count)
    engine = core.get_engine()
    assert api.get_engine() is engine and db.get_engine() is engine
    assert db.shared_engines() == before + 1
    assert pools == [engine.pool], f"{len(pools)} connection pools were used"
