"""Load-test a procqa service on this machine with real questions and hostile requests.

Usage:
  python scripts/loadtest.py [--url http://127.0.0.1:8000] [--duration 60] [--concurrency 32]
  python scripts/loadtest.py --spawn-index index/     # start `procqa serve` on a free port first

Only loopback addresses are accepted, and every run is bounded by --duration and --max-requests.
About a quarter of the requests are hostile (blank, oversized, control characters, bad
percent-encoding, markup, emoji, a huge body, unknown sections and ids, wrong methods): each
has the statuses it should get, and any other status is reported. Prints requests, responses
by status, server errors, connection errors and latency percentiles; exits 1 when any request
got a 5xx or no response at all, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

QUESTIONS = Path(__file__).resolve().parent.parent / "eval" / "questions.jsonl"
FALLBACK_QUESTIONS = (
    "How long is recovery after a knee replacement?",
    "what are the risks of a colonoscopy",
    "how do I prepare for cataract surgery",
    "who performs a spinal fusion",
)
HOSTILE_SHARE = 0.25
REQUEST_TIMEOUT_S = 30.0
MAX_DURATION_S = 3600
MAX_CONCURRENCY = 256
HUGE_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class Probe:
    """One kind of request and the statuses a healthy service answers it with."""

    name: str
    method: str
    path: str
    params: dict[str, str] | None = None
    json: Any = None
    content: bytes | None = None
    expect: frozenset[int] = frozenset({200})


@dataclass(frozen=True)
class Outcome:
    name: str
    status: int | None  # None: no response (the error says why)
    error: str | None
    seconds: float
    expected: bool


@dataclass
class Summary:
    """What a run saw; `failed` is what the exit status reports."""

    requests: int
    seconds: float
    by_status: dict[str, int]
    server_errors: int
    connection_errors: dict[str, int]
    unexpected: dict[str, dict[str, int]]
    p50_ms: float
    p99_ms: float
    search_p50_ms: float
    search_p99_ms: float
    failed: bool = field(init=False)

    def __post_init__(self) -> None:
        self.failed = bool(self.server_errors or self.connection_errors)


def valid_probes(questions: Sequence[str]) -> list[Probe]:
    searches = [Probe("search", "GET", "/search", params={"q": q, "k": "5"}) for q in questions]
    posts = [Probe("search-post", "POST", "/search", json={"query": q, "k": 10}) for q in questions[::4]]
    return [*searches, *posts, Probe("procedures", "GET", "/procedures"), Probe("ready", "GET", "/ready")]


def hostile_probes() -> list[Probe]:
    bad = frozenset({422})
    return [
        Probe("empty query", "GET", "/search", params={"q": ""}, expect=bad),
        Probe("5000-char query", "GET", "/search", params={"q": "knee " * 1000}, expect=bad),
        Probe("5000-char query post", "POST", "/search", json={"query": "x" * 5000}, expect=bad),
        Probe("k=0", "GET", "/search", params={"q": "knee", "k": "0"}, expect=bad),
        Probe("k=1000", "GET", "/search", params={"q": "knee", "k": "1000"}, expect=bad),
        Probe("control chars", "GET", "/search", params={"q": "knee\x00\x1b[2J\x07recovery"}, expect=bad),
        Probe("invalid percent-encoding", "GET", "/search?q=%ff%fe%zz%"),
        Probe("html/script", "GET", "/search", params={"q": "<script>alert(1)</script><img src=x onerror=1>"}),
        Probe("emoji", "GET", "/search", params={"q": "🦵🏽 knee 😷 recovery? 🩺"}),
        Probe(
            "huge body", "POST", "/search", json={"query": "knee " * (HUGE_BODY_BYTES // 5)}, expect=frozenset({413})
        ),
        Probe("malformed json", "POST", "/search", content=b'{"query": ', expect=bad),
        Probe("unknown section", "GET", "/search", params={"q": "knee", "section": "Aftercare"}, expect=bad),
        Probe("unknown procedure id", "GET", "/procedures/cpt-00000", expect=frozenset({404})),
        Probe("malformed procedure id", "GET", "/procedures/..%2F..%2Fetc%2Fpasswd", expect=frozenset({404, 422})),
        Probe("wrong method", "DELETE", "/search", expect=frozenset({405})),
        Probe("admin without token", "POST", "/admin/reload", expect=frozenset({401, 404})),
    ]


def read_questions(path: Path, limit: int = 200) -> list[str]:
    if not path.is_file():
        return list(FALLBACK_QUESTIONS)
    lines = path.read_text("utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()][:limit] or list(FALLBACK_QUESTIONS)


def loopback_problem(url: str) -> str | None:
    """Why a URL is refused, or None for an http URL on a loopback address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--url must be an http URL such as http://127.0.0.1:8000, not {url!r}"
    if parts.hostname == "localhost":
        return None
    try:
        loopback = ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return f"refusing {parts.hostname}: this load test only runs against loopback (127.0.0.1, ::1, localhost)"
    return None


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of ascending values; 0 for none."""
    if not sorted_values:
        return 0.0
    return sorted_values[max(1, math.ceil(share * len(sorted_values))) - 1]


def summarise(outcomes: Sequence[Outcome], seconds: float) -> Summary:
    """Counts and latency percentiles of a run."""
    statuses = Counter(str(o.status) for o in outcomes if o.status is not None)
    unexpected: dict[str, Counter[str]] = {}
    for o in outcomes:
        if o.status is not None and not o.expected:
            unexpected.setdefault(o.name, Counter())[str(o.status)] += 1
    latencies = sorted(o.seconds * 1000 for o in outcomes if o.status is not None)
    searches = sorted(o.seconds * 1000 for o in outcomes if o.name == "search" and o.status is not None)
    return Summary(
        requests=len(outcomes),
        seconds=round(seconds, 2),
        by_status=dict(sorted(statuses.items())),
        server_errors=sum(n for status, n in statuses.items() if status.startswith("5")),
        connection_errors=dict(Counter(o.error for o in outcomes if o.error)),
        unexpected={name: dict(counts) for name, counts in sorted(unexpected.items())},
        p50_ms=round(percentile(latencies, 0.50), 1),
        p99_ms=round(percentile(latencies, 0.99), 1),
        search_p50_ms=round(percentile(searches, 0.50), 1),
        search_p99_ms=round(percentile(searches, 0.99), 1),
    )


def render(summary: Summary) -> str:
    rate = summary.requests / summary.seconds if summary.seconds else 0.0
    lines = [
        f"requests            {summary.requests} in {summary.seconds:.1f}s ({rate:.0f}/s)",
        f"responses by status {', '.join(f'{s}: {n}' for s, n in summary.by_status.items()) or 'none'}",
        f"5xx responses       {summary.server_errors}",
        f"connection errors   {sum(summary.connection_errors.values())} {summary.connection_errors or ''}".rstrip(),
        f"latency             p50 {summary.p50_ms:.1f} ms, p99 {summary.p99_ms:.1f} ms (all requests)",
        f"search latency      p50 {summary.search_p50_ms:.1f} ms, p99 {summary.search_p99_ms:.1f} ms (valid searches)",
    ]
    lines += [f"unexpected status   {name}: {counts}" for name, counts in summary.unexpected.items()]
    lines.append("FAIL: server errors or lost connections" if summary.failed else "ok: no server errors")
    return "\n".join(lines)


async def send(client: httpx.AsyncClient, probe: Probe) -> Outcome:
    started = time.perf_counter()
    headers = {"content-type": "application/json"} if probe.content is not None else None
    try:
        response = await client.request(
            probe.method, probe.path, params=probe.params, json=probe.json, content=probe.content, headers=headers
        )
    except httpx.TransportError as error:  # no response at all: what the run exists to catch
        return Outcome(probe.name, None, type(error).__name__, time.perf_counter() - started, False)
    seconds = time.perf_counter() - started
    return Outcome(probe.name, response.status_code, None, seconds, response.status_code in probe.expect)


async def hammer(
    url: str,
    valid: Sequence[Probe],
    hostile: Sequence[Probe],
    *,
    duration: float,
    concurrency: int,
    max_requests: int,
    seed: int = 0,
) -> tuple[list[Outcome], float]:
    """Send requests from `concurrency` workers until the time or request budget runs out."""
    chooser = random.Random(seed)
    outcomes: list[Outcome] = []
    issued = 0
    started = time.perf_counter()
    deadline = started + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            issued += 1
            pool = hostile if chooser.random() < HOSTILE_SHARE else valid
            outcomes.append(await send(client, chooser.choice(pool)))

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return outcomes, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def spawned(index: Path, procqa: Sequence[str], *, ready_timeout: float) -> Iterator[str]:
    """`procqa serve` on the index at a free loopback port, until /ready answers; stopped after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*procqa, "serve", "--index", str(index), "--host", "127.0.0.1", "--port", str(port)]
    print(f"starting {shlex.join(command)}", file=sys.stderr)
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if server.poll() is not None:
                log.seek(0)
                tail = log.read()[-2000:].decode("utf-8", "replace")
                raise SystemExit(f"loadtest: the server exited with status {server.returncode}:\n{tail}")
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise SystemExit(f"loadtest: {url}/ready did not answer 200 within {ready_timeout:.0f}s")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def bounded(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], float]:
    """An argparse type that refuses values outside low..high, naming the range."""

    def check(text: str) -> float:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not from {low:g} to {high:g}")
        return value

    return check


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="loadtest", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    cli.add_argument("--url", default="http://127.0.0.1:8000", help="service to test (loopback only)")
    cli.add_argument("--duration", type=bounded(float, 0.1, MAX_DURATION_S), default=60.0, help="seconds (default 60)")
    cli.add_argument("--concurrency", type=bounded(int, 1, MAX_CONCURRENCY), default=32, help="workers (default 32)")
    cli.add_argument("--max-requests", type=bounded(int, 1, 10_000_000), default=1_000_000, help="request budget")
    cli.add_argument("--questions", type=Path, default=QUESTIONS, help="JSON lines with a 'question' field")
    cli.add_argument("--spawn-index", type=Path, help="start `procqa serve` on this index and test it")
    cli.add_argument("--procqa", default=f"{sys.executable} -m procqa.cli", help="how to run procqa for --spawn-index")
    cli.add_argument("--ready-timeout", type=bounded(float, 1, 600), default=180.0, help="seconds to wait for /ready")
    cli.add_argument("--json", type=Path, help="also write the summary here as JSON")
    return cli


def run(args: argparse.Namespace, url: str) -> Summary:
    valid = valid_probes(read_questions(args.questions))
    outcomes, seconds = asyncio.run(
        hammer(
            url,
            valid,
            hostile_probes(),
            duration=args.duration,
            concurrency=args.concurrency,
            max_requests=args.max_requests,
        )
    )
    return summarise(outcomes, seconds)


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if problem := loopback_problem(args.url):
        cli.error(problem)
    if args.spawn_index:
        if not args.spawn_index.is_dir():
            cli.error(f"--spawn-index {args.spawn_index} is not an index folder")
        with spawned(args.spawn_index, shlex.split(args.procqa), ready_timeout=args.ready_timeout) as url:
            summary = run(args, url)
    else:
        summary = run(args, args.url)
    print(render(summary))
    if args.json:
        args.json.write_text(json.dumps(asdict(summary), indent=2) + "\n", "utf-8")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
