#!/usr/bin/env python
"""Load benchmark of `sensorium serve`, on loopback only, bounded in count and time.

A script, not a pytest test. Run it from the repository root (needs `sensorium[serve]`):

    python tests/benchmarks/serve_benchmark.py [--requests 2000] [--seconds 30] [--soak 10000]

It starts `sensorium serve --port 0` (the bundled digits and sentiment models, their .tflite files) as
a subprocess on 127.0.0.1 and drives it with an aiohttp client from this process:

1. requests/s and p50/p99 latency of `POST /v1/models/digits:predict` (one base64 PNG per request)
   and `POST /v1/models/sentiment:predict` (one text) at concurrency 1, 8 and 32: at most `--requests`
   requests or `--seconds` seconds per cell, after a warm-up;
2. the serving overhead: p50 at concurrency 1 minus the p50 of the same input through the runtime
   predictor in this process (`predictor.records([Item(...)])`), which is what the server runs;
3. a soak on a fresh server: `--soak` requests (classify and sentiment alternating, concurrency 8),
   with the server's resident memory (RSS) read at request 1,000 and at the end;
4. errors: any status other than 200, or a failed connection, in any phase.

Targets (from the issue): overhead <= 2 ms p50 at concurrency 1; classify throughput at concurrency 32
>= 2x that at concurrency 1 (batching pays); RSS growth <= 20 MB from request 1,000 to 10,000; zero
errors. The exit code is 1 when a target is missed. The machine is shared: other work running at the
same time skews every figure.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "assets" / "examples"
TEXT = "I love this airline, the crew was great"


def start_server(*extra: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    """`sensorium serve --port 0 ...` with its log in `log_path`; returns (process, base URL)."""
    log = open(log_path, "w")  # noqa: SIM115 - the child writes it for its whole life
    proc = subprocess.Popen([sys.executable, "-m", "sensorium", "serve", "--port", "0", *extra],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline:
        match = re.search(r"on (http://127\.0\.0\.1:\d+)/", log_path.read_text())
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}):\n{log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start in 120 s")


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (Linux /proc; psutil elsewhere)."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


async def load(session, pairs: list[tuple[str, bytes]], concurrency: int, count: int, seconds: float,
               on_done=None) -> dict:
    """`count` POSTs with `concurrency` in flight, for at most `seconds`; request i goes to
    pairs[i % len(pairs)] (URL, JSON body)."""
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json"}

    async def worker() -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < deadline:
            url, body = pairs[issued % len(pairs)]
            issued += 1
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors.append(f"HTTP {response.status}")
            except Exception as exc:  # noqa: BLE001 - counted as an error
                errors.append(type(exc).__name__)
            latencies.append(time.perf_counter() - t0)
            if on_done is not None:
                on_done(len(latencies))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return {"n": len(latencies), "rps": len(latencies) / wall, "p50": pct(latencies, 50) * 1000,
            "p99": pct(latencies, 99) * 1000, "errors": len(errors), "error_kinds": sorted(set(errors))}


def in_process_p50(task: str, value, name, runs: int = 500) -> float:
    """p50 (ms) of one input through the runtime predictor, as the server calls it."""
    import sensorium
    from sensorium.runtime.predictor import Item

    predictor = sensorium.pipeline(task, top_k=5) if task == "classify" else sensorium.pipeline(task)
    for _ in range(20):
        list(predictor.records([Item(value, name)]))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        list(predictor.records([Item(value, name)]))
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


async def main_async(args: argparse.Namespace) -> int:
    import aiohttp

    png = (EXAMPLES / "digit-7.png").read_bytes()
    classify_body = json.dumps({"instances": [{"b64": base64.b64encode(png).decode()}]}).encode()
    sentiment_body = json.dumps({"instances": [TEXT]}).encode()
    tmp = Path(tempfile.mkdtemp(prefix="sensorium-serve-bench-"))

    print(f"# sensorium serve benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loopback)")
    base_classify = in_process_p50("classify", png, 0)
    base_sentiment = in_process_p50("sentiment", TEXT, TEXT)

    proc, base = start_server("--model", "image=digits", "--model", "sentiment=sentiment", log_path=tmp / "serve.log")
    rows, ok = [], True
    try:
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            for name, path, body in (("classify", "/v1/models/digits:predict", classify_body),
                                     ("sentiment", "/v1/models/sentiment:predict", sentiment_body)):
                await load(session, [(base + path, body)], 8, 200, 20)  # warm-up
                for concurrency in (1, 8, 32):
                    cell = await load(session, [(base + path, body)], concurrency, args.requests, args.seconds)
                    rows.append((name, concurrency, cell))
    finally:
        proc.terminate()
        proc.wait(30)

    print("\n| endpoint | concurrency | requests | req/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, concurrency, cell in rows:
        print(f"| {name} | {concurrency} | {cell['n']} | {cell['rps']:.0f} | {cell['p50']:.2f} | {cell['p99']:.2f} | "
              f"{cell['errors']} |")
    by = {(name, c): cell for name, c, cell in rows}
    overhead = {"classify": by[("classify", 1)]["p50"] - base_classify,
                "sentiment": by[("sentiment", 1)]["p50"] - base_sentiment}
    print("\n| endpoint | in-process predictor p50 ms | served p50 ms (concurrency 1) | overhead ms |")
    print("|---|---:|---:|---:|")
    for name, baseline in (("classify", base_classify), ("sentiment", base_sentiment)):
        print(f"| {name} | {baseline:.2f} | {by[(name, 1)]['p50']:.2f} | {overhead[name]:.2f} |")

    # the soak, on a fresh server: RSS at request 1,000 and at the end
    proc, base = start_server("--model", "image=digits", "--model", "sentiment=sentiment", log_path=tmp / "soak.log")
    marks: dict[int, float] = {}
    try:
        def on_done(n: int) -> None:
            if n % 1000 == 0 and n not in marks:
                marks[n] = rss_mb(proc.pid)

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            pairs = [(base + "/v1/models/digits:predict", classify_body),
                     (base + "/v1/models/sentiment:predict", sentiment_body)]
            soak = await load(session, pairs, 8, args.soak, 600, on_done)
    finally:
        proc.terminate()
        proc.wait(30)
    first, last = marks.get(1000, float("nan")), marks.get(max(marks) if marks else 0, float("nan"))
    growth = last - first
    print(f"\nsoak: {soak['n']} requests (classify and sentiment alternating, concurrency 8), {soak['rps']:.0f} req/s, "
          f"{soak['errors']} errors")
    print("server RSS MB at request: " + ", ".join(f"{n:,}: {mb:.1f}" for n, mb in sorted(marks.items())))

    errors = sum(cell["errors"] for _, _, cell in rows) + soak["errors"]
    ratio = by[("classify", 32)]["rps"] / by[("classify", 1)]["rps"]
    checks = [
        (f"serving overhead p50 at concurrency 1 <= 2 ms (classify {overhead['classify']:.2f}, sentiment "
         f"{overhead['sentiment']:.2f})", max(overhead.values()) <= 2.0),
        (f"classify throughput at concurrency 32 >= 2x concurrency 1 ({ratio:.1f}x)", ratio >= 2.0),
        (f"RSS growth from request 1,000 to {soak['n']:,} <= 20 MB ({growth:+.1f} MB)",
         soak["n"] >= args.soak and growth <= 20.0),
        (f"zero errors ({errors})", errors == 0),
    ]
    print()
    for text, passed in checks:
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'}  {text}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per cell (default 2000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time cap per cell (default 30)")
    parser.add_argument("--soak", type=int, default=10_000, help="requests of the soak (default 10000)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
