"""What one element costs a page run on this machine (not a test): a bare Streamlit page (bench/elements_app.py,
served by a `streamlit run` of its own) drawn in Chromium with 10 and with 110 elements, alternated, and the run's
own time as the server logs it.

    .venv/bin/python bench/bench_element_cost.py --runs 9

Each element a page sends is one message from the script's thread to the server's event loop, which serialises
it and writes it to the browser's socket while the script goes on: on two cores the two threads take turns on
the GIL, so each element costs the run far more than building it. The ticket page's server run is mostly this
(bench_server_pages.py); here it is without any database or app code. Prints the medians and the cost per
element ((110 − 10) ÷ 100), with the load average before and after and the machine reference of
bench_server_pages.py.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_server_pages import IDLE  # noqa: E402
from bench.common import machine_reference  # noqa: E402

LINE = re.compile(r"elements run n=(\d+) kind=(\w+) ([\d.]+) ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    reference = machine_reference()
    load_before = os.getloadavg()[0]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "server.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", str(ROOT / "bench" / "elements_app.py"), "--server.port",
                 str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                 "--browser.gatherUsageStats", "false"], stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(base + "_stcore/health", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the page's server did not start") from None
                    time.sleep(0.2)
            cases = [(10, "caption"), (110, "caption"), (10, "container"), (60, "container")]
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                for _ in range(args.runs + 1):  # the first round compiles the page: left out below
                    for n, kind in cases:
                        page.goto(f"{base}?n={n}&kind={kind}")
                        page.locator(IDLE).wait_for(timeout=60_000)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        runs: dict[tuple[int, str], list[float]] = {}
        for line in log_path.read_text().splitlines():
            m = LINE.search(line)
            if m:
                runs.setdefault((int(m[1]), m[2]), []).append(float(m[3]))
    med = {k: statistics.median(v[1:]) for k, v in runs.items() if len(v) > 1}
    print(f"medians of {args.runs} · load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f} · "
          f"machine reference (5M-step Python loop) {reference:.0f} ms")
    print("page | server run, median ms")
    print("--- | ---:")
    for (n, kind), ms in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        what = "captions" if kind == "caption" else "containers, each with one line of Markdown (2 elements each)"
        print(f"{n} {what} | {ms:.1f}")
    if (10, "caption") in med and (110, "caption") in med:
        print(f"one element: {(med[(110, 'caption')] - med[(10, 'caption')]) / 100:.3f} ms")


if __name__ == "__main__":
    main()
