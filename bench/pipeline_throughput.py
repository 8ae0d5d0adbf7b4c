#!/usr/bin/env python
"""Sustained throughput of the whole detection pipeline against the raw Kafka consume rate.

One run does, against one broker (an embedded Tansu unless ``--broker``):

1. generate W + N contract-valid request events (JSON like ``streams.simulate.encode_events``
   writes, ~320 bytes each) over ``--accounts`` heavy-tailed accounts, with event time
   advancing at ``--event-rate`` events/s so windows close during the run; every account
   sends within the first W (``--warmup-events``, default 2 x accounts);
2. produce them all to a fresh input topic (timed: the produce rate);
3. ``--repeat`` times: (a) raw consume -- a confluent-kafka ``Consumer`` assigned every
   partition from the beginning that only touches ``msg.value()``; (b) the whole pipeline --
   a real :class:`streams.engine.DetectionEngine` in a thread (consume -> decode -> columns
   -> per-partition monitors -> alerts / DLQ / snapshots), with a fresh app id each time so
   it starts from offset 0 with no state;
4. print rates, CPU per event, their ratio, and whether the issue-2 floor and the issue-4
   goals are met (``--json``: one machine-readable JSON line at the end as well).

The figures are the *sustained* rate: they cover the N events after the warm-up, when every
account already has its slot, its cached hashes and its baselines (the warm-up's own rate,
first sight of every account included, is printed as well; ``--warmup-events 0`` measures
from the first batch instead). The raw consumer stops exactly at the end of the warm-up;
the engine's mark falls after the batch that completes it. Consumer-group join time
(reported separately) and the first fetch are outside the span for both. "Handled" for the
pipeline means ``events_counted + duplicates + dead-lettered`` in the engine's metrics.
The raw consumer never asks for more events than are left, so its last call does not wait
out its timeout.

Run from the repository root::

    python bench/pipeline_throughput.py --events 500000 --accounts 10000
    python bench/pipeline_throughput.py --events 500000 --accounts 50000 --repeat 3 --json
    python bench/pipeline_throughput.py --events 200000 --profile      # needs py-spy

Absolute rates depend on whoever else uses the cores (the broker shares them); the ratio
pipeline/raw measured in the same run is the figure to compare between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import numpy as np  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # noqa: E402

from streams.broker import EmbeddedBroker  # noqa: E402
from streams.engine import DetectionEngine, EngineMetrics  # noqa: E402
from streams.settings import Settings, Topics  # noqa: E402
from streams.simulate import WireEvent  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

FLOOR_ISSUE2 = 30_000           # events/s per worker process
GOAL_ISSUE4 = 150_000           # events/s per worker process ...
GOAL_RATIO_ISSUE4 = 0.40        # ... and at least this share of the raw consume rate ...
GOAL_ACCOUNTS_ISSUE4 = 50_000   # ... with this many active accounts
START_TS = 1_767_225_600_000    # 2026-01-01T00:00:00Z, as streams.simulate

_MODELS = ["atlas-large", "atlas-small", "atlas-reason"]
_UAS = ["python-requests/2.32", "openai-python/1.40", "node-fetch/3.3", "curl/8.5",
        "Go-http-client/2.0", "acme-sdk/4.1", "langchain/0.2", "java-http/21"]


# -- event generation ------------------------------------------------------------------------


@dataclass
class Workload:
    events: list[tuple[bytes, bytes, int]]      # (key, value, event ts)
    accounts_active: int
    giant_share: float
    templated_share: float
    raw_prompt_share: float
    mean_bytes: float
    event_time_s: float


def generate_events(n: int, accounts: int, event_rate: float, seed: int = 7,
                    templated_accounts: float = 0.05, raw_prompt_share: float = 0.01,
                    id_prefix: str = "bench", cover_within: int | None = None) -> Workload:
    """N events over ``accounts`` accounts; every account sends at least one (among the
    first ``cover_within`` events, when given).

    Sizes are heavy-tailed: one giant tenant sends ~25% of the traffic, the others share
    the rest by Pareto(1.1) weights. Arrivals are a Poisson process at ``event_rate`` events
    per second of event time. ~5% of the accounts send templated prompts (fingerprints a few
    bits from one of three templates) 80% of the time; ``raw_prompt_share`` of events carry
    raw ``prompt`` text (fingerprinted by the decoder) instead of ``prompt_fp``.
    """
    if accounts < 1 or n < accounts:
        raise ValueError(f"need 1 <= accounts <= events (got {accounts} accounts, {n} events)")
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.1, size=accounts) + 0.05
    if accounts > 1:
        weights[0] = 0.0
        weights = weights / weights.sum() * 0.75
        weights[0] = 0.25
    weights = weights / weights.sum()
    acct = rng.choice(accounts, size=n, p=weights)
    cover = n if cover_within is None else min(n, cover_within)   # every account sends in [0, cover)
    acct[rng.choice(cover, size=accounts, replace=False)] = rng.permutation(accounts)
    span_ms = n / event_rate * 1000.0
    ts = START_TS + np.sort(rng.uniform(0.0, span_ms, size=n)).astype(np.int64)

    names = ["acct-giant" if a == 0 else f"acct-{a:06d}" for a in range(accounts)]
    n_keys = rng.integers(1, 4, size=accounts)
    n_keys[0] = 20
    nets = rng.integers(11, 223, size=(accounts, 2)) * 65536 + rng.integers(0, 65536, size=(accounts, 2))
    net_str = [[f"{x >> 16}.{(x >> 8) & 255}.{x & 255}" for x in row] for row in nets.tolist()]
    asns = rng.integers(1000, 65000, size=(accounts, 2)).tolist()
    uas = rng.integers(0, len(_UAS), size=(accounts, 2)).tolist()
    main_model = rng.integers(0, len(_MODELS), size=accounts)
    tmpl_acct = rng.random(accounts) < templated_accounts
    tmpl_acct[0] = False
    templates = rng.integers(0, 2**63, size=(accounts, 3), dtype=np.int64).astype(np.uint64) * np.uint64(2)

    key_i = (rng.random(n) * n_keys[acct]).astype(np.int64)
    net_i = rng.integers(0, 2, size=n)
    ua_i = rng.integers(0, 2, size=n)
    model = np.where(rng.random(n) < 0.7, main_model[acct], rng.integers(0, len(_MODELS), size=n))
    completion = np.clip(rng.lognormal(5.3, 1.1, size=n), 1, 30_000).astype(np.int64)
    reasoning = np.where(model == 2, (completion * rng.uniform(0.1, 0.6, size=n)).astype(np.int64), 0)
    prompt_tok = np.clip(rng.lognormal(5.5, 1.2, size=n), 5, 60_000).astype(np.int64)
    status = rng.choice(np.array([200, 429, 500]), size=n, p=[0.96, 0.03, 0.01])
    templated = tmpl_acct[acct] & (rng.random(n) < 0.8)
    fp = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + \
        rng.integers(0, 2, size=n).astype(np.uint64)
    tfp = templates[acct, rng.integers(0, 3, size=n)]
    for j in range(4):  # up to 4 flipped bits: near-duplicates of the template
        bit = np.uint64(1) << rng.integers(0, 64, size=n).astype(np.uint64)
        tfp = np.where(rng.random(n) < 0.5 + 0.1 * j, tfp, tfp ^ bit)
    fp = np.where(templated, tfp, fp)
    raw_prompt = (rng.random(n) < raw_prompt_share) & ~templated
    host = rng.integers(1, 255, size=n)
    cot, logprobs, logit_bias = rng.random(n) < 0.02, rng.random(n) < 0.01, rng.random(n) < 0.002
    ticket = rng.integers(0, 10**9, size=n)

    enc = msgspec.json.Encoder()
    cols = [x.tolist() for x in (acct, ts, key_i, net_i, ua_i, model, completion, reasoning,
                                 prompt_tok, status, fp, raw_prompt, host, cot, logprobs,
                                 logit_bias, ticket)]
    key_bytes = [nm.encode() for nm in names]
    endpoint = "/v1/chat/completions"
    cot_flags = ["cot_request"]
    out: list[tuple[bytes, bytes, int]] = []
    append = out.append
    total = 0
    for i, (a, t, k, ni, ui, m, ct, rt, pt, st, f, rp, h, c, lp, lb, tk) in enumerate(zip(*cols, strict=True)):
        name = names[a]
        value = enc.encode(WireEvent(
            event_id=f"{id_prefix}-{i}", ts=t, account_id=name, api_key_id=f"{name}-key{k}",
            model=_MODELS[m], endpoint=endpoint, status=st, prompt_tokens=pt,
            completion_tokens=ct, ip=f"{net_str[a][ni]}.{h}", asn=asns[a][ni],
            user_agent=_UAS[uas[a][ui]], reasoning_tokens=rt,
            prompt_fp=None if rp else f"{f:016x}",
            prompt=f"Customer ticket {tk}: please summarise the thread about order {tk % 997}" if rp else None,
            flags=cot_flags if c else None, logprobs=lp, logit_bias=lb))
        total += len(value)
        append((key_bytes[a], value, t))
    return Workload(
        events=out, accounts_active=int(len(np.unique(acct))),
        giant_share=float(np.mean(acct == 0)) if accounts > 1 else 1.0,
        templated_share=float(templated.mean()), raw_prompt_share=float(raw_prompt.mean()),
        mean_bytes=total / n, event_time_s=float((ts[-1] - ts[0]) / 1000.0))


# -- measuring helpers -----------------------------------------------------------------------
def open_broker(stack: contextlib.ExitStack, address: str | None) -> tuple[str, int | None, str]:
    """(bootstrap, broker pid or None, description): ``address`` if given, else an embedded
    Tansu that ``stack`` stops. The pid lets the scripts read the broker's CPU."""
    if address:
        return address, None, address
    broker = stack.enter_context(EmbeddedBroker())
    bootstrap = broker.bootstrap or ""
    return bootstrap, broker.pid, f"embedded Tansu {bootstrap} (pid {broker.pid}, same cores)"


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) of another process, from /proc; None where unknown."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@dataclass(frozen=True)
class Mark:
    """One instant: wall clock, CPU of this process, of the calling thread, of the broker."""

    wall: float
    cpu: float
    thread_cpu: float
    broker_cpu: float | None

    @classmethod
    def now(cls, broker_pid: int | None) -> Mark:
        return cls(time.perf_counter(), time.process_time(), time.thread_time(),
                   proc_cpu_s(broker_pid))


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


@dataclass
class ConsumeResult:
    phase: str
    events: int
    seconds: float
    cpu_s: float
    broker_cpu_s: float | None
    events_per_s: float = 0.0
    cpu_us_per_event: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.events_per_s = self.events / self.seconds if self.seconds > 0 else 0.0
        self.cpu_us_per_event = self.cpu_s / self.events * 1e6 if self.events else 0.0


# -- phases ----------------------------------------------------------------------------------
def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=15).values():
        fut.result()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # wait until metadata shows every partition
        md = admin.list_topics(topic, timeout=5).topics.get(topic)
        if md is not None and md.error is None and len(md.partitions) == partitions:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} did not show {partitions} partitions")


def produce_all(bootstrap: str, topic: str, events: list[tuple[bytes, bytes, int]],
                broker_pid: int | None) -> ConsumeResult:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10_000,
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576})
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    produce, poll = p.produce, p.poll
    a = Mark.now(broker_pid)
    for key, value, ts in events:
        while True:
            try:
                produce(topic, value, key, timestamp=ts, on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.01)
    left = p.flush(120)
    b = Mark.now(broker_pid)
    if left or failed:
        raise RuntimeError(f"produce: {left} undelivered, {len(failed)} failed ({failed[:3]})")
    return ConsumeResult("produce", len(events), b.wall - a.wall, b.cpu - a.cpu,
                         _delta(a.broker_cpu, b.broker_cpu))


def raw_consume(bootstrap: str, topic: str, partitions: int, n: int, broker_pid: int | None,
                stall_s: float = 30.0, warmup: int = 0) -> ConsumeResult:
    """confluent-kafka at its best: assigned partitions, batches of 10k, only ``value()``.

    With ``warmup`` the result covers the events after the first ``warmup`` (the batch that
    crosses it ends the warm-up span, which is reported in ``extra``)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "fetch.queue.backoff.ms": 10})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        seen = nbytes = batches = 0
        first: Mark | None = None
        warm: Mark | None = None
        warm_seen = 0
        last_progress = time.monotonic()
        while seen < n:
            # never ask for more than is left (the last call would wait out its timeout), and
            # stop at the end of the warm-up exactly
            left = warmup - seen if seen < warmup else n - seen
            msgs = c.consume(min(10_000, left), 0.5)
            if not msgs:
                if time.monotonic() - last_progress > stall_s:
                    raise RuntimeError(f"raw consume stalled at {seen}/{n} events")
                continue
            if first is None:
                first = Mark.now(broker_pid)
            for m in msgs:
                if m.error() is None:
                    nbytes += len(m.value() or b"")
                    seen += 1
            batches += 1
            last_progress = time.monotonic()
            if warmup and warm is None and seen >= warmup:
                warm, warm_seen = Mark.now(broker_pid), seen
        end = Mark.now(broker_pid)
    finally:
        c.close()
    assert first is not None
    start = warm or first
    if warm is not None and seen <= warm_seen:
        raise RuntimeError("raw consume: the warm-up took every event; use more --events")
    extra: dict[str, Any] = {"batches": batches, "mb": round(nbytes / 1e6, 1)}
    if warm is not None:
        extra["warmup"] = _span(warm_seen, first, warm)
    return ConsumeResult("raw", seen - warm_seen, end.wall - start.wall, end.cpu - start.cpu,
                         _delta(start.broker_cpu, end.broker_cpu), extra=extra)


def _span(events: int, a: Mark, b: Mark) -> dict[str, Any]:
    """Rate and CPU of one span (the warm-up), for ``extra``."""
    wall, cpu = b.wall - a.wall, b.cpu - a.cpu
    return {"events": events, "seconds": round(wall, 3),
            "events_per_s": events / wall if wall > 0 else 0.0,
            "cpu_us_per_event": cpu / events * 1e6 if events else 0.0,
            "thread_cpu_us_per_event": (b.thread_cpu - a.thread_cpu) / events * 1e6 if events else 0.0}


def handled(m: EngineMetrics) -> int:
    """Input events the engine is done with: counted, dropped as duplicate, or dead-lettered."""
    return m.events_counted + m.duplicates + sum(m.dlq.values())


class BenchEngine(DetectionEngine):
    """The real engine, with clock readings taken inside its own thread: just before the
    first batch is processed, just after the batch that completes the warm-up (if any) and
    just after the batch that completes all events."""

    def __init__(self, settings: Settings, target: int, broker_pid: int | None,
                 warmup: int = 0) -> None:
        super().__init__(settings)
        self.target = target
        self.warmup = warmup
        self.broker_pid = broker_pid
        self.first_mark: Mark | None = None
        self.warm_mark: Mark | None = None
        self.warm_handled = 0
        self.done_mark: Mark | None = None
        self.done_state: dict[str, Any] = {}

    def _process(self, msgs: list[Any]) -> None:
        if self.first_mark is None:
            self.first_mark = Mark.now(self.broker_pid)
        super()._process(msgs)
        if self.warmup and self.warm_mark is None and handled(self.metrics) >= self.warmup:
            self.warm_mark = Mark.now(self.broker_pid)
            self.warm_handled = handled(self.metrics)
        if self.done_mark is None and handled(self.metrics) >= self.target:
            self.done_mark = Mark.now(self.broker_pid)
            mons = list(self.monitors.values())
            self.done_state = {
                "alerts": dict(self.metrics.alerts), "snapshots": self.metrics.snapshots,
                "batches": self.metrics.batches,
                "windows_closed": sum(m.counters.windows_closed for m in mons),
                "tracked_accounts": sum(len(m.accounts) for m in mons),
            }


def pipeline_settings(bootstrap: str, topic: str, partitions: int, window_s: int | None,
                      idle_partition_s: float = 2.0, batch_max: int | None = None) -> Settings:
    u = uuid.uuid4().hex[:8]
    overrides: dict[str, Any] = {}
    if window_s is not None:
        overrides["window_s"] = window_s
    if batch_max is not None:
        overrides["batch_max"] = batch_max
    return Settings.from_env(
        {}, broker=bootstrap, app_id=f"bench-{u}", partitions=partitions,
        topics=Topics(requests=topic, accounts=f"bench-acc-{u}", alerts=f"bench-alerts-{u}",
                      dlq=f"bench-dlq-{u}"),
        session_timeout_s=6, idle_partition_s=idle_partition_s, snapshot_interval_s=5, web_enabled=False,
        log_level="warning", **overrides)


class Profiler:
    """``py-spy record`` attached to this process for the duration of a ``with`` block."""

    def __init__(self, path: Path, fmt: str, rate: int, native: bool) -> None:
        self.path, self.fmt, self.rate, self.native = path, fmt, rate, native
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = path.with_suffix(path.suffix + ".log")

    @staticmethod
    def available() -> str | None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        return exe if Path(exe).exists() else None

    def __enter__(self) -> Profiler:
        exe = self.available()
        assert exe is not None
        cmd = [exe, "record", "--pid", str(os.getpid()), "--rate", str(self.rate),
               "--format", self.fmt, "--output", str(self.path), "--threads"]
        if self.native:
            cmd.append("--native")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(1.0)  # let it attach before the measured span starts
        if self.proc.poll() is not None:
            raise RuntimeError(f"py-spy exited at once: {self.log.read_text()[-800:]}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def pipeline_run(bootstrap: str, topic: str, partitions: int, n: int, broker_pid: int | None,
                 window_s: int | None, timeout_s: float, profiler: Profiler | None = None,
                 idle_partition_s: float = 2.0, warmup: int = 0,
                 batch_max: int | None = None) -> ConsumeResult:
    """The whole pipeline over ``n`` events; with ``warmup``, the figures cover the events
    after the first ``warmup`` (that span is in ``extra["warmup"]``)."""
    settings = pipeline_settings(bootstrap, topic, partitions, window_s, idle_partition_s, batch_max)
    ensure_topics(settings)        # the engine creates nothing itself
    engine = BenchEngine(settings, n, broker_pid, warmup)
    crash: list[BaseException] = []

    def target() -> None:
        try:
            engine.run()
        except BaseException as exc:  # reported by the main thread
            crash.append(exc)

    rss0 = rss_mib()
    with profiler if profiler is not None else contextlib.nullcontext():
        thread = threading.Thread(target=target, name="engine", daemon=True)
        t_start = time.perf_counter()
        thread.start()
        ready = engine.wait_ready(60)
        t_ready = time.perf_counter()
        polled_first = polled_done = None
        deadline = time.monotonic() + timeout_s
        while thread.is_alive() and time.monotonic() < deadline:
            m = engine.metrics
            if polled_first is None and m.batches:
                polled_first = time.perf_counter()
            if handled(m) >= n:
                polled_done = time.perf_counter()
                break
            time.sleep(0.05)
        engine.stop()
    t_stop = time.perf_counter()
    thread.join(60)
    t_joined = time.perf_counter()
    if crash:
        raise RuntimeError(f"engine crashed: {crash[0]!r}") from crash[0]
    if thread.is_alive():
        raise RuntimeError("engine did not stop within 60 s")
    m = engine.metrics
    got = handled(m)
    if got < n:
        raise RuntimeError(f"pipeline handled {got}/{n} events in {timeout_s:.0f} s "
                           f"(ready={ready}, batches={m.batches})")
    first, done = engine.first_mark, engine.done_mark
    warm_span: dict[str, Any] | None = None
    measured = n
    if first is not None and engine.warm_mark is not None:
        warm_span = _span(engine.warm_handled, first, engine.warm_mark)
        first, measured = engine.warm_mark, n - engine.warm_handled
        if measured <= 0:
            raise RuntimeError(f"the batch that ended the warm-up ({engine.warm_handled:,} events) "
                               f"also ended the run: nothing left to measure; use more --events "
                               f"or a smaller --batch-max")
    if first is None or done is None:  # the hook did not fire (engine internals changed): polls
        assert polled_first is not None and polled_done is not None
        seconds, cpu_s, thread_cpu_s, broker_cpu_s = polled_done - polled_first, float("nan"), None, None
        state: dict[str, Any] = {"alerts": dict(m.alerts), "snapshots": m.snapshots, "batches": m.batches,
                 "windows_closed": None, "tracked_accounts": m.tracked_accounts}
        first_wall = polled_first
    else:
        seconds, cpu_s = done.wall - first.wall, done.cpu - first.cpu
        thread_cpu_s = done.thread_cpu - first.thread_cpu
        broker_cpu_s = _delta(first.broker_cpu, done.broker_cpu)
        state = engine.done_state
        first_wall = first.wall
    rss1 = rss_mib()
    alerts: dict[str, int] = state["alerts"]
    return ConsumeResult("pipeline", measured, seconds, cpu_s, broker_cpu_s, extra={
        "warmup": warm_span, "total_events": n,
        "join_s": round(t_ready - t_start, 3), "first_batch_after_ready_s": round(first_wall - t_ready, 3),
        "engine_thread_cpu_us_per_event": None if thread_cpu_s is None else thread_cpu_s / measured * 1e6,
        "alerts": sum(alerts.values()), "alerts_by_status": alerts,
        "snapshots": state["snapshots"], "snapshots_total": m.snapshots,
        "batches": state["batches"], "windows_closed": state["windows_closed"],
        "tracked_accounts": state["tracked_accounts"], "counted": m.events_counted,
        "duplicates": m.duplicates, "dlq": dict(m.dlq), "late": m.late_events,
        "shutdown_s": round(t_joined - t_stop, 3),
        "rss_growth_mib": None if rss0 is None or rss1 is None else round(rss1 - rss0, 1),
        "busy_s": round(m.busy_seconds, 3), "app_id": settings.app_id,
        "topics": [settings.topics.alerts, settings.topics.dlq, settings.topics.accounts,
                   settings.state_topic],
    })


# -- profile summary -------------------------------------------------------------------------
def summarize_profile(path: Path, fmt: str, top: int = 22) -> list[str]:
    """Top frames by inclusive and self share of samples (speedscope or raw formats)."""
    stacks: Counter[tuple[str, ...]] = Counter()
    threads: Counter[str] = Counter()
    if fmt == "speedscope":
        doc = json.loads(path.read_text())
        # py-spy gives one frame per (function, line): fold lines into functions
        frames = [f"{fr['name']} ({Path(fr.get('file') or '?').name})" for fr in doc["shared"]["frames"]]
        profiles = doc["profiles"]  # one per thread; stacks root first, weights in seconds
        for prof in profiles:
            threads[prof.get("name", "?")] += sum(float(w) for w in prof["weights"])
        engine = [p for p in profiles if '"engine"' in p.get("name", "")]
        for prof in engine or profiles:  # the engine thread alone where it can be told apart
            for sample, weight in zip(prof["samples"], prof["weights"], strict=True):
                stacks[tuple(frames[i] for i in sample)] += float(weight)
    elif fmt == "raw":
        for line in path.read_text().splitlines():
            text, _, count = line.rpartition(" ")
            if text:  # frames look like "func (path/file.py:123)": fold lines into functions
                stack = tuple(fr.rsplit(":", 1)[0] + ")" if fr.endswith(")") and ":" in fr else fr
                              for fr in text.split(";"))
                stacks[stack] += float(count)
    else:
        return []
    total = sum(stacks.values()) or 1.0
    all_threads = sum(threads.values()) or 1.0
    incl: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    for stack, w in stacks.items():
        if not stack:
            continue
        self_[stack[-1]] += w
        for fr in set(stack):
            incl[fr] += w
    out = ["profile: share of the non-idle samples of "
           + ("the engine thread" if threads and total < all_threads else "all threads")
           + (" (by thread: " + ", ".join(f"{t} {100 * w / all_threads:.0f}%"
                                          for t, w in threads.most_common()) + ")" if threads else ""),
           "  incl%   self%   frame"]
    skip = ("Thread.", "pipeline_run.<locals>", "<module>", "main (", "process ", "thread ")
    shown = 0
    for fr, w in incl.most_common():
        if fr.startswith(skip):
            continue
        out.append(f"  {100 * w / total:5.1f}  {100 * self_[fr] / total:5.1f}   {fr}")
        shown += 1
        if shown >= top:
            break
    out.append("  -- by self time --")
    for fr, w in self_.most_common(top // 2):
        out.append(f"  {100 * incl[fr] / total:5.1f}  {100 * w / total:5.1f}   {fr}")
    return out


# -- report ----------------------------------------------------------------------------------
def _med(values: list[float]) -> float:
    vals = [v for v in values if v == v]  # drop NaN
    return statistics.median(vals) if vals else float("nan")


def _yes(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def report(args: argparse.Namespace, info: dict[str, Any], produce: ConsumeResult,
           raws: list[ConsumeResult], pipes: list[ConsumeResult]) -> dict[str, Any]:
    ratios = [p.events_per_s / r.events_per_s for r, p in zip(raws, pipes, strict=True)]
    raw_rate, pipe_rate = _med([r.events_per_s for r in raws]), _med([p.events_per_s for p in pipes])
    ratio = _med(ratios)
    raw_us, pipe_us = _med([r.cpu_us_per_event for r in raws]), _med([p.cpu_us_per_event for p in pipes])
    thread_us = _med([p.extra["engine_thread_cpu_us_per_event"] or float("nan") for p in pipes])
    broker_us = _med([(p.broker_cpu_s or float("nan")) / p.events * 1e6 for p in pipes])
    raw_broker_us = _med([(r.broker_cpu_s or float("nan")) / r.events * 1e6 for r in raws])
    last = pipes[-1].extra
    w = 72
    print("=" * w)
    print(f"pipeline_throughput  {info['events']:,} events measured after {info['warmup_events']:,} "
          f"warm-up  {info['accounts']:,} accounts ({info['accounts_active']:,} active)  "
          f"{info['partitions']} partitions  batch_max {info['batch_max']:,}")
    print(f"broker {info['broker']}  |  {info['host']}")
    print(f"workload: {info['mean_bytes']:.0f} B/event, event time {info['event_time_s']:.0f} s at "
          f"{info['event_rate']:,.0f} ev/s, window {info['window_s']} s; giant tenant "
          f"{100 * info['giant_share']:.0f}%, templated {100 * info['templated_share']:.1f}%, "
          f"raw prompts {100 * info['raw_prompt_share']:.1f}%  (generated in {info['generate_s']:.1f} s)")
    print("-" * w)
    print(f"{'run':>4} {'raw ev/s':>12} {'pipeline ev/s':>14} {'ratio':>7} {'raw µs/ev':>10} "
          f"{'pipe µs/ev':>11} {'join s':>7} {'not counted':>12}")
    for i, (r, p, q) in enumerate(zip(raws, pipes, ratios, strict=True), 1):
        print(f"{i:>4} {r.events_per_s:>12,.0f} {p.events_per_s:>14,.0f} {q:>7.3f} "
              f"{r.cpu_us_per_event:>10.2f} {p.cpu_us_per_event:>11.2f} {p.extra['join_s']:>7.2f} "
              f"{p.extra['total_events'] - p.extra['counted']:>12,}")
    print("-" * w)
    med = f" (median of {len(raws)})" if len(raws) > 1 else ""
    print(f"produce rate       : {produce.events_per_s:>12,.0f} events/s   ({produce.seconds:.2f} s, "
          f"{produce.cpu_us_per_event:.2f} µs CPU/event)")
    print(f"raw consume rate   : {raw_rate:>12,.0f} events/s   {raw_us:.2f} µs CPU/event{med}"
          + (f"; broker {raw_broker_us:.2f} µs/event" if raw_broker_us == raw_broker_us else ""))
    print(f"pipeline rate      : {pipe_rate:>12,.0f} events/s   {pipe_us:.2f} µs CPU/event{med}"
          + (f" (engine thread {thread_us:.2f})" if thread_us == thread_us else "")
          + (f"; broker {broker_us:.2f} µs/event" if broker_us == broker_us else ""))
    print(f"ratio pipeline/raw : {ratio:>12.3f}{med}")
    warm = info["warmup_events"]
    if warm:
        wr = [r.extra["warmup"] for r in raws if r.extra.get("warmup")]
        wp = [p.extra["warmup"] for p in pipes if p.extra.get("warmup")]
        w_raw, w_pipe = _med([x["events_per_s"] for x in wr]), _med([x["events_per_s"] for x in wp])
        print(f"warm-up (cold)     : first {warm:,} events, every account seen for the first "
              f"time: raw {w_raw:,.0f} ev/s, pipeline {w_pipe:,.0f} ev/s "
              f"({_med([x['cpu_us_per_event'] for x in wp]):.2f} µs CPU/event), ratio "
              f"{w_pipe / w_raw if w_raw else float('nan'):.3f}{med}")
        span_from = f"the end of the warm-up ({warm:,} events)"
    else:
        span_from = "first batch"
    print(f"pipeline span      : {_med([p.seconds for p in pipes]):.2f} s from {span_from} to "
          f"{info['events'] + warm:,} handled; group join {_med([p.extra['join_s'] for p in pipes]):.2f} s "
          f"(not in the span); shutdown {last['shutdown_s']:.2f} s")
    print(f"pipeline output    : alerts {last['alerts']} {last['alerts_by_status']}, snapshots "
          f"{last['snapshots']} in span ({last['snapshots_total']} with the final one), windows "
          f"closed {last['windows_closed']}, tracked accounts {last['tracked_accounts']}, batches "
          f"{last['batches']}, dlq {sum(last['dlq'].values())}, duplicates {last['duplicates']}, "
          f"RSS +{last['rss_growth_mib']} MiB")
    # Every generated event is valid, unique and in order per partition: anything not counted
    # (late / DLQ / duplicate) is the engine's doing, and the run did not measure the full path.
    unclean = [(i, p) for i, p in enumerate(pipes, 1) if p.extra["counted"] != p.extra["total_events"]]
    for i, p in unclean:
        total = p.extra["total_events"]
        print(f"WARNING run {i}: {total - p.extra['counted']:,} of {total:,} valid in-order events "
              f"were not counted (dlq {p.extra['dlq']}, duplicates {p.extra['duplicates']}). The "
              f"engine treats a partition with backlog as idle after idle_partition_s="
              f"{info['idle_partition_s']:g} s without data and advances it to the busiest "
              f"partition's watermark, so its backlog becomes 'late'. Rates of this run do not "
              f"measure the full path; compare with --idle-partition-s 600.")
    verdict = "" if not unclean else "  (run not clean, see WARNING)"
    print("-" * w)
    active = info["accounts_active"]
    print(f"issue 2 floor  {FLOOR_ISSUE2:>7,} events/s per worker          : {_yes(pipe_rate >= FLOOR_ISSUE2)}{verdict}")
    print(f"issue 4 goal   {GOAL_ISSUE4:>7,} events/s per worker          : {_yes(pipe_rate >= GOAL_ISSUE4)}{verdict}")
    print(f"issue 4 goal   pipeline >= {GOAL_RATIO_ISSUE4:.0%} of raw consume     : "
          f"{_yes(ratio >= GOAL_RATIO_ISSUE4)} ({ratio:.1%}){verdict}")
    print(f"issue 4 needs  >= {GOAL_ACCOUNTS_ISSUE4:,} active accounts          : "
          f"{'yes' if active >= GOAL_ACCOUNTS_ISSUE4 else 'no'} ({active:,}: "
          + ("this run speaks for issue 4)" if active >= GOAL_ACCOUNTS_ISSUE4 else "use --accounts 50000 for issue 4)"))
    print("=" * w)
    return {
        "config": info,
        "produce": asdict(produce),
        "raw": [asdict(r) for r in raws],
        "pipeline": [asdict(p) for p in pipes],
        "median": {"raw_events_per_s": raw_rate, "pipeline_events_per_s": pipe_rate,
                   "warmup_pipeline_events_per_s": _med([p.extra["warmup"]["events_per_s"]
                                                         for p in pipes if p.extra.get("warmup")]),
                   "ratio": ratio, "raw_cpu_us_per_event": raw_us, "pipeline_cpu_us_per_event": pipe_us,
                   "engine_thread_cpu_us_per_event": thread_us},
        "clean": not unclean,
        "goals": {"issue2_floor": pipe_rate >= FLOOR_ISSUE2, "issue4_rate": pipe_rate >= GOAL_ISSUE4,
                  "issue4_ratio": ratio >= GOAL_RATIO_ISSUE4,
                  "issue4_accounts": active >= GOAL_ACCOUNTS_ISSUE4},
    }


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=500_000, help="events to produce and consume (measured)")
    ap.add_argument("--warmup-events", type=int,
                    help="events before the measured ones, over the same accounts, that are not in "
                         "the figures: slots, caches and baselines of every account are created "
                         "there, so the figures are the sustained rate (default: 2 x --accounts; "
                         "0: measure from the first batch, first sight of every account included; "
                         "the warm-up's own rate is printed too)")
    ap.add_argument("--batch-max", type=int, help="engine batch_max (default: the Settings default)")
    ap.add_argument("--accounts", type=int, default=10_000, help="distinct accounts (all active)")
    ap.add_argument("--partitions", type=int, default=4, help="partitions of the input topic")
    ap.add_argument("--broker", help="HOST:PORT of a running broker (default: start an embedded Tansu)")
    ap.add_argument("--repeat", type=int, default=1, help="run both consume phases K times; medians")
    ap.add_argument("--event-rate", type=float, default=5_000.0,
                    help="events per second of event time (default 5000: a 60 s window closes "
                         "every 300k events)")
    ap.add_argument("--window-s", type=int, help="engine window (default: the Settings default)")
    ap.add_argument("--idle-partition-s", type=float, default=2.0,
                    help="engine idle_partition_s (default 2, as the integration tests use)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=600.0, help="give up on a pipeline run after this")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line at the end")
    ap.add_argument("--profile", action="store_true", help="run the (first) pipeline phase under py-spy")
    ap.add_argument("--profile-format", choices=["speedscope", "flamegraph", "raw"], default="speedscope",
                    help="speedscope JSON (open at https://www.speedscope.app), flamegraph SVG, or "
                         "collapsed stacks")
    ap.add_argument("--profile-out", type=Path, help="output file (default /tmp/xwatch-profile-<ts>.<ext>)")
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    ap.add_argument("--profile-native", action="store_true", help="py-spy --native (C frames too)")
    ap.add_argument("--fail-under", type=float, help="exit 1 if the pipeline median is below this events/s")
    args = ap.parse_args(argv)
    if args.events < 1 or args.accounts < 1 or args.accounts > args.events:
        ap.error("need 1 <= --accounts <= --events")
    if args.repeat < 1 or args.partitions < 1:
        ap.error("--repeat and --partitions must be >= 1")
    if args.warmup_events is None:
        args.warmup_events = 2 * args.accounts
    if args.warmup_events and args.warmup_events < args.accounts:
        ap.error("--warmup-events must be 0 or at least --accounts (every account sends in it)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profiler: Profiler | None = None
    if args.profile:
        if Profiler.available() is None:
            print("--profile: py-spy is not installed. Install it into the venv "
                  "(pip install py-spy; it is not a project dependency) and run again, or run "
                  "this script under it yourself: py-spy record -o /tmp/profile.svg -- "
                  "python bench/pipeline_throughput.py ...", file=sys.stderr)
            return 2
        ext = {"speedscope": "speedscope.json", "flamegraph": "svg", "raw": "txt"}[args.profile_format]
        out = args.profile_out or Path(f"/tmp/xwatch-profile-{time.strftime('%Y%m%d-%H%M%S')}.{ext}")
        profiler = Profiler(out, args.profile_format, args.profile_rate, args.profile_native)

    with contextlib.ExitStack() as stack:
        bootstrap, broker_pid, broker_desc = open_broker(stack, args.broker)
        u = uuid.uuid4().hex[:8]
        topic = f"bench-requests-{u}"
        t0 = time.perf_counter()
        total = args.warmup_events + args.events
        # one stream: the first --warmup-events of it (in which every account sends) warm up
        wl = generate_events(total, args.accounts, args.event_rate, args.seed, id_prefix=f"b{u}",
                             cover_within=args.warmup_events or None)
        gen_s = time.perf_counter() - t0
        create_topic(bootstrap, topic, args.partitions)
        produce = produce_all(bootstrap, topic, wl.events, broker_pid)
        info = {
            "events": args.events, "accounts": args.accounts, "accounts_active": wl.accounts_active,
            "partitions": args.partitions, "broker": broker_desc, "topic": topic,
            "event_rate": args.event_rate, "event_time_s": wl.event_time_s,
            "window_s": args.window_s or Settings().window_s, "mean_bytes": wl.mean_bytes,
            "idle_partition_s": args.idle_partition_s,
            "giant_share": wl.giant_share, "templated_share": wl.templated_share,
            "raw_prompt_share": wl.raw_prompt_share, "generate_s": gen_s, "repeat": args.repeat,
            "warmup_events": args.warmup_events,
            "batch_max": args.batch_max or Settings().batch_max,
            "host": f"{platform.node()} {os.cpu_count()} cpus, python {platform.python_version()}",
        }
        del wl
        raws, pipes = [], []
        for i in range(args.repeat):
            raws.append(raw_consume(bootstrap, topic, args.partitions, total, broker_pid,
                                    warmup=args.warmup_events))
            pipes.append(pipeline_run(bootstrap, topic, args.partitions, total, broker_pid,
                                      args.window_s, args.timeout, profiler if i == 0 else None,
                                      args.idle_partition_s, warmup=args.warmup_events,
                                      batch_max=args.batch_max))
            gc.collect()  # the engine's producers sit in reference cycles: close them now
            print(f"[run {i + 1}/{args.repeat}] raw {raws[-1].events_per_s:,.0f} ev/s, pipeline "
                  f"{pipes[-1].events_per_s:,.0f} ev/s", file=sys.stderr, flush=True)
        results = report(args, info, produce, raws, pipes)
        if profiler is not None:
            print(f"profile of the first pipeline phase ({args.profile_format}): {profiler.path}")
            print("  (sampling perturbs the rates of that run; py-spy log: "
                  f"{profiler.log})")
            if profiler.path.exists():
                for line in summarize_profile(profiler.path, args.profile_format):
                    print(line)
                results["profile"] = str(profiler.path)
        if args.broker:  # leave an external broker as we found it (best effort)
            names = [topic] + [n for p in pipes for n in p.extra["topics"]]
            with contextlib.suppress(Exception):
                for fut in AdminClient({"bootstrap.servers": bootstrap}).delete_topics(
                        names, operation_timeout=10).values():
                    with contextlib.suppress(Exception):
                        fut.result()
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps(results, default=str))
    if args.fail_under is not None and results["median"]["pipeline_events_per_s"] < args.fail_under:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
