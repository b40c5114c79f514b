"""The load generator of ``bench_votes``: voters doing the full cycle against the site over loopback.

A cycle is what a voter's browser does: the poll page (htmx partial), its images (fetched together), a human
think time, the vote (whose response is the reveal), and the reveal's rating lines polled every 300 ms at the
URL the reveal names (its ``ratings-poller``) until the ratings consumer has applied the vote. In open-loop mode cycles *arrive* as a Poisson process at ``rate`` per second,
whatever the server's state (how voters arrive); in closed-loop mode ``clients`` voters repeat cycles back to back.

Pure asyncio and a minimal HTTP/1.1 keep-alive client (no Django, no third-party client): the generator's
own CPU per request is small and is measured separately from the server's.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from urllib.parse import quote

TOKEN_RE = re.compile(rb'data-poll="([A-Za-z0-9_-]+)"')
IMAGE_RE = re.compile(rb'/poll/[A-Za-z0-9_-]+/image/\d')
POLLER_RE = re.compile(rb'id="ratings-poller" hx-get="([^"]+)"')  # the reveal waits for the ratings consumer
DUEL_CHOICES = ("left", "right", "tie", "bothbad", "left", "right")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer


class Client:
    """HTTP/1.1 keep-alive requests to one host over a small pool of connections."""

    def __init__(self, host: str, port: int, size: int):
        self.host, self.port = host, port
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(size)

    async def _open(self) -> _Connection:
        return _Connection(*await asyncio.open_connection(self.host, self.port))

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict, bytes]:
        async with self.slots:
            conn = self.idle.pop() if self.idle else await self._open()
            try:
                status, head, data = await self._exchange(conn, method, path, headers, body)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.writer.close()
                raise
            if head.get("connection", "").lower() == "close":
                conn.writer.close()
            else:
                self.idle.append(conn)
            return status, head, data

    async def _exchange(self, conn, method, path, headers, body):
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status_line = await conn.reader.readline()
        if not status_line:
            raise ValueError("connection closed")
        status = int(status_line.split()[1])
        head: dict[str, str] = {}
        cookies: list[str] = []
        while (line := await conn.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "set-cookie":
                cookies.append(value.strip())
            head[name] = value.strip()
        head["set-cookie"] = cookies  # type: ignore[assignment]
        if "content-length" in head:
            data = await conn.reader.readexactly(int(head["content-length"]))
        elif head.get("transfer-encoding", "").lower() == "chunked":
            data = await _chunked(conn.reader)
        else:
            data = await conn.reader.read()
            head["connection"] = "close"
        return status, head, data


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while (size := int((await reader.readline()).split(b";")[0], 16)):
        parts.append(await reader.readexactly(size))
        await reader.readline()
    await reader.readline()
    return b"".join(parts)


@dataclass
class Voter:
    cookies: dict[str, str] = field(default_factory=dict)

    def headers(self, **extra: str) -> dict[str, str]:
        h = {"HX-Request": "true", **extra}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return h

    def keep(self, head: dict) -> None:
        for cookie in head.get("set-cookie", []):
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"poll": [], "image": [], "vote": [], "reveal": []})
    accepted: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    cycles: int = 0
    exhausted: int = 0  # a voter was shown every image there is (503): a new voter takes their place

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def _timed(results: Results, kind: str, call):
    start = time.perf_counter()
    status, head, data = await call
    results.latencies[kind].append((time.perf_counter() - start) * 1000.0)
    return status, head, data


async def cycle(client: Client, voter: Voter, results: Results, rng: random.Random, *, mode: str, think: float) -> None:
    """One voter's full cycle; failures are counted by kind, never raised."""
    page = "/ffa/" if mode == "ffa" else "/duel/"
    try:
        status, head, body = await _timed(results, "poll", client.request("GET", page, voter.headers()))
        voter.keep(head)
        match = TOKEN_RE.search(body)
        if status == 503:
            results.exhausted += 1
            voter.cookies.clear()
            return None
        if status != 200 or not match:
            return results.error(f"poll {status}")
        token = match.group(1).decode()
        images = [m.decode() for m in dict.fromkeys(IMAGE_RE.findall(body))]
        got = await asyncio.gather(*[_timed(results, "image", client.request("GET", src, voter.headers())) for src in images])
        if any(s != 200 for s, _, _ in got):
            return results.error("image")
        if think > 0:
            await asyncio.sleep(rng.lognormvariate(0.0, 0.5) * think)
        choice = f"choice=best&best={rng.randrange(len(images))}" if mode == "ffa" else f"choice={rng.choice(DUEL_CHOICES)}"
        csrf = voter.cookies.get("csrftoken", "")
        status, head, body = await _timed(results, "vote", client.request(
            "POST", f"/poll/{quote(token)}/vote/", voter.headers(**{"X-CSRFToken": csrf,
                                                                   "Content-Type": "application/x-www-form-urlencoded"}),
            choice.encode()))
        voter.keep(head)
        if status != 200:
            return results.error(f"vote {status}")
        results.accepted.append(token)
        for _ in range(20):
            poller = POLLER_RE.search(body)
            if poller is None:
                break
            await asyncio.sleep(0.3)
            status, _head, body = await _timed(results, "reveal", client.request(
                "GET", poller.group(1).decode(), voter.headers()))
        results.cycles += 1
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        results.error(type(exc).__name__)


async def open_loop(port: int, *, rate: float, seconds: float, voters: int, seed: int, mode_mix: float, think: float,
                    connections: int) -> Results:
    """Cycles arriving as a Poisson process at ``rate`` per second for ``seconds``, by ``voters`` voters."""
    rng = random.Random(seed)
    client = Client("127.0.0.1", port, connections)
    idle = [Voter() for _ in range(voters)]  # a person does one cycle at a time; a new one comes if all are busy
    results = Results()
    tasks = []

    async def visit(voter: Voter, cycle_rng: random.Random, mode: str) -> None:
        try:
            await cycle(client, voter, results, cycle_rng, mode=mode, think=think)
        finally:
            idle.append(voter)

    start = time.monotonic()
    at = 0.0
    while (at := at + rng.expovariate(rate)) < seconds:
        delay = start + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        voter = idle.pop(rng.randrange(len(idle))) if idle else Voter()
        mode = "ffa" if rng.random() < mode_mix else "fixed"
        tasks.append(asyncio.ensure_future(visit(voter, random.Random(rng.random()), mode)))
    await asyncio.gather(*tasks)
    return results


async def closed_loop(port: int, *, clients: int, seconds: float, seed: int, mode_mix: float, think: float) -> Results:
    """``clients`` voters each doing cycles back to back for ``seconds``."""
    client = Client("127.0.0.1", port, clients)
    results = Results()
    deadline = time.monotonic() + seconds

    async def one(i: int) -> None:
        rng, voter = random.Random(seed * 1000 + i), Voter()
        while time.monotonic() < deadline:
            await cycle(client, voter, results, rng, mode="ffa" if rng.random() < mode_mix else "fixed", think=think)

    await asyncio.gather(*[one(i) for i in range(clients)])
    return results


def run(kind: str, port: int, out, **kwargs) -> None:
    """Process entry point: run one generator, put its results (and its own CPU seconds) on ``out``."""
    import os
    import resource

    cpus = kwargs.pop("cpus", None)
    if cpus:
        os.sched_setaffinity(0, cpus)
    started = resource.getrusage(resource.RUSAGE_SELF)
    results = asyncio.run((open_loop if kind == "open" else closed_loop)(port, **kwargs))
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (used.ru_utime - started.ru_utime) + (used.ru_stime - started.ru_stime)
    out.put({"latencies": results.latencies, "accepted": results.accepted, "errors": results.errors,
             "cycles": results.cycles, "exhausted": results.exhausted, "cpu_s": cpu})
