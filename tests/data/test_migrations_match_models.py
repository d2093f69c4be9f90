"""The schema the migrations build is the one lib/models.py declares, on SQLite and PostgreSQL: Alembic's
autogenerate comparison finds no difference (a column type, a nullable flag, an index or a table that only one
of them has would be a difference)."""

from __future__ import annotations

import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from lib.models import Base

#: What the migrations make by hand and the models do not declare: the rollup tables filled by triggers
#: (lib/metrics/metrics_store.py), the full-text tables and generated tsvector columns (lib/search.py), and the
#: indexes made in SQL (partial, expression, full-text), which their own tests check.
BY_HAND_TABLES = {"metric_days", "metric_day_deltas", "metric_past", "metric_past_log", "alembic_version"}
FTS_TABLE = re.compile(r"\w+_fts(_(data|idx|docsize|config|content))?|sqlite_\w+")  # SQLite FTS5 and its shadows
BY_HAND_COLUMNS = {("tickets", "search_vector"), ("kb_articles", "search_vector")}


def _ignored(diff: tuple) -> bool:
    kind = diff[0]
    if kind == "remove_table":
        name = diff[1].name
        return name in BY_HAND_TABLES or FTS_TABLE.fullmatch(name) is not None
    if kind == "remove_column":
        return (diff[2], diff[3].name) in BY_HAND_COLUMNS
    if kind == "add_index":  # SQLite reads expression indexes back only approximately
        return any(not hasattr(e, "name") or e.__class__.__name__.startswith("_textual") for e in diff[1].expressions)
    return kind == "remove_index"


def test_the_migrated_schema_matches_the_models(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = [d for d in compare_metadata(ctx, Base.metadata) if not (isinstance(d, tuple) and _ignored(d))]
    flat = []
    for d in diffs:
        flat.extend(d if isinstance(d, list) else [d])
    assert flat == [], "\n".join(map(repr, flat))
