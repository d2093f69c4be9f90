"""Chart building (not a test): the Metrics page's 8 figures, as the builders make them and the validated way.

    .venv/bin/python bench/bench_charts.py [--weeks 12 52] [--runs 15] [--sample 5000]

The frames are made up here, shaped like those of lib.metrics.measures (seed 7): flow per week × 4 priorities
× 12 categories, the backlog, ``--sample`` resolution hours (the page's sample), SLA per week and clock, the
workload of 12 technicians, closures by reason and the age buckets of open tickets. For each number of weeks it
prints the median ms of ``--runs`` runs (bench.common.median_ms) of:

* builders: lib.metrics.charts, which writes each figure as plain dicts and wraps it without validation;
* validated: the same figures built the validated way, the builder then ``go.Figure(fig.to_dict())`` (Plotly's
  property-by-property validation, the cost of building with ``go.Bar``, ``add_trace``, ``update_layout``);
* validated ÷ builders;
* Streamlit: what ``st.plotly_chart`` adds to draw a figure, ``fig.to_dict()`` and
  ``plotly.io.to_json(..., validate=False)``.

One line per chart and the page's 8 charts built in a row; the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import plotly.io as pio  # noqa: E402

from bench.common import median_ms  # noqa: E402
from lib.metrics import charts  # noqa: E402
from lib.metrics.measures import AGE_BUCKETS, FLOW_COLUMNS, REASONS, WORK_REASONS  # noqa: E402
from lib.workflow import CLOSURE_LABELS, ClosureReason, Priority  # noqa: E402

LAST_MONDAY = date(2026, 11, 23)
CATEGORIES = ("Hardware", "Software", "Network", "Access", "E-mail", "Printing", "Phones", "Accounts", "VPN",
              "Storage", "Mobile devices", "Facilities")
TECHNICIANS = 12

Builder = Callable[[], go.Figure]


def frames(weeks: int, sample: int) -> dict[str, pd.DataFrame]:
    """The inputs of the Metrics page's charts over ``weeks`` weeks, as lib.metrics.measures returns them."""
    rng = np.random.default_rng(7)
    periods = [LAST_MONDAY - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    rows = []
    for week in periods:
        for prio in (int(p) for p in Priority):
            for cat_id, cat in enumerate(CATEGORIES, start=1):
                created, resolved, closed = (int(v) for v in rng.poisson(3 + 2 * prio, 3))
                rows.append((week, prio, cat, cat_id, created, resolved, closed, int(rng.integers(0, 2)),
                             int(rng.integers(0, 2))))
    flow = pd.DataFrame(rows, columns=FLOW_COLUMNS)
    backlog = pd.DataFrame({"period": periods, "backlog_end": [int(v) for v in rng.integers(300, 500, weeks)]})
    resolution = pd.DataFrame({"priority": rng.integers(1, 5, sample).astype(int),
                               "hours": rng.lognormal(2.5, 1.4, sample)})
    resolution.attrs.update({"total": sample * 20, "sampled": True})
    sla_rows = []
    for week in periods:
        for clock in ("response", "resolution"):
            met, breached = int(rng.integers(150, 250)), int(rng.integers(0, 30))
            sla_rows.append((week, clock, met, breached, 100.0 * met / (met + breached)))
    sla = pd.DataFrame(sla_rows, columns=["period", "clock", "met", "breached", "pct"])
    opens = rng.integers(0, 6, (TECHNICIANS, 4))
    workload = pd.DataFrame({
        "technician": [f"Technician {i:02d}" for i in range(1, TECHNICIANS + 1)],
        "user_id": list(range(10, 10 + TECHNICIANS)), "capacity": [20] * (TECHNICIANS - 2) + [None, 12],
        "open": opens.sum(axis=1), "open_weighted": opens @ np.array([4, 3, 2, 1]),
        "resolved_in_range": rng.integers(5, 60, TECHNICIANS),
        "open_critical": opens[:, 0], "open_high": opens[:, 1], "open_medium": opens[:, 2], "open_low": opens[:, 3],
        "active": [True] * TECHNICIANS})
    closures = pd.DataFrame([(r, CLOSURE_LABELS[ClosureReason(r)], int(rng.integers(0, 400)), r in WORK_REASONS)
                             for r in REASONS], columns=["reason", "label", "count", "counts_as_work"])
    ageing = pd.DataFrame({"bucket": [b for b, _ in AGE_BUCKETS],
                           "count": [int(v) for v in rng.integers(5, 120, len(AGE_BUCKETS))]})
    return {"flow": flow, "backlog": backlog, "resolution": resolution, "sla": sla, "workload": workload,
            "closures": closures, "ageing": ageing, "periods": pd.DataFrame({"period": periods})}


def page_builders(d: dict[str, pd.DataFrame]) -> dict[str, Builder]:
    """The 8 figures of the Metrics page, called as pages/metrics.py calls them."""
    periods = list(d["periods"]["period"])
    weights = {4: 4, 3: 3, 2: 2, 1: 1}
    return {
        "flow by priority": lambda: charts.flow_by_priority(d["flow"], measure="created", periods=periods),
        "flow by category": lambda: charts.flow_by_category(d["flow"], measure="created", periods=periods),
        "backlog": lambda: charts.backlog_line(d["backlog"], periods=periods),
        "closures": lambda: charts.closures_bar(d["closures"]),
        "resolution box": lambda: charts.resolution_box(d["resolution"]),
        "SLA trend": lambda: charts.sla_trend(d["sla"], periods=periods),
        "workload": lambda: charts.workload_bars(d["workload"], weights=weights),
        "ageing": lambda: charts.ageing_bar(d["ageing"]),
    }


def validated(build: Builder) -> Callable[[], go.Figure]:
    return lambda: go.Figure(build().to_dict())


def streamlit_cost(fig: go.Figure) -> Callable[[], str]:
    """What st.plotly_chart does with a go.Figure: plotly.tools.return_figure_from_figure_or_data, then to_json."""
    return lambda: pio.to_json(fig.to_dict(), validate=False)


def all_of(fns: Sequence[Callable[[], object]]) -> Callable[[], None]:
    def run() -> None:
        for fn in fns:
            fn()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weeks", type=int, nargs="+", default=[12, 52])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--sample", type=int, default=5_000, help="resolution hours behind the box chart")
    args = parser.parse_args()
    load_before = os.getloadavg()
    print(f"Metrics page charts, median ms of {args.runs} runs; {os.cpu_count()} CPUs, "
          f"load {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    for weeks in args.weeks:
        d = frames(weeks, args.sample)
        builders = page_builders(d)
        figs = {name: build() for name, build in builders.items()}
        print(f"\n{weeks} weeks: {len(d['flow']):,} flow rows, {len(d['resolution']):,} resolution hours, "
              f"{TECHNICIANS} technicians")
        print(f"{'chart':<20} {'builders':>9} {'validated':>10} {'ratio':>6} {'Streamlit':>10}")
        rows = [(name, [build], [validated(build)], [streamlit_cost(figs[name])]) for name, build in builders.items()]
        rows.append(("all 8 in a row", list(builders.values()), [validated(b) for b in builders.values()],
                     [streamlit_cost(f) for f in figs.values()]))
        for name, new, old, draw in rows:
            new_ms = median_ms(all_of(new), args.runs)
            old_ms = median_ms(all_of(old), args.runs)
            draw_ms = median_ms(all_of(draw), args.runs)
            print(f"{name:<20} {new_ms:>9.1f} {old_ms:>10.1f} {old_ms / new_ms:>5.1f}x {draw_ms:>10.1f}")
    load_after = os.getloadavg()
    print(f"\nload after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")


if __name__ == "__main__":
    main()
