"""Dashboard page latency: starts `suanli up` (demo fleet, ten sample jobs) in a temporary
directory on 127.0.0.1, logs in with the admin token and fetches each page N times.

    python benchmarks/bench_dashboard.py [--n 20]

Prints p50 / p99 per page in milliseconds (server time plus the local HTTP round trip)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / ".suanli"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUANLI_")}
        proc = subprocess.Popen([sys.executable, "-m", "suanli.cli", "up", "--port", "0",
                                 "--home", str(home), "--duration", "300"],
                                cwd=d, env=env, stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            url = None
            assert proc.stdout is not None
            for line in proc.stdout:
                m = re.search(r"dashboard: (http://\S+)/ui/", line)
                if m:
                    url = m.group(1)
                    break
            assert url, "suanli up did not print the dashboard URL"
            token = (home / "admin.token").read_text().strip()
            c = httpx.Client(base_url=url, timeout=60)
            r = c.post("/ui/login", data={"token": token})
            assert r.status_code in (200, 303), r.text
            time.sleep(8)  # the sample jobs finish
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', c.get("/ui/whatif").text)
            assert csrf
            pages: list[tuple[str, str, dict[str, str] | None]] = [
                ("fleet", "/ui/", None), ("jobs", "/ui/jobs", None),
                ("job (estimates)", "/ui/jobs/1", None), ("nodes", "/ui/nodes", None),
                ("plots", "/ui/plots", None), ("logs.json", "/ui/jobs/1/logs.json", None),
                ("what-if (2 policies)", "/ui/whatif",
                 {"csrf": csrf.group(1), "policy": "fifo", "source": "history"}),
            ]
            print(f"{'page':<22} {'p50 ms':>8} {'p99 ms':>8}   ({args.n} requests each)")
            for name, path, form in pages:
                times = []
                for _ in range(args.n):
                    t0 = time.perf_counter()
                    r = c.post(path, data=form) if form else c.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, (path, r.status_code)
                times.sort()
                p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
                print(f"{name:<22} {times[len(times) // 2]:>8.1f} {p99:>8.1f}")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
