"""The Faust application: ``create_app(settings)`` builds a worker around the batch engine.

Faust is the application framework: worker lifecycle and signals, the web server with
``/health`` and ``/metrics``, timers. The firehose itself does not go through Faust
streams (one Faust message costs ~170 µs; see DESIGN-NOTES): :class:`DetectionService`
runs :class:`streams.engine.DetectionEngine` in a thread, which consumes in batches.
A bug in the engine crashes the process loudly (exit code 70) so the orchestrator
restarts it; it never leaves a half-dead worker that has stopped committing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import threading
import time
from typing import Any

import faust
import mode

from streams.alerts import encode_alert
from streams.cross_account import CrossAccountView
from streams.engine import DetectionEngine, EngineMetrics, finding_to_alert
from streams.kafka_probe import KafkaUnreachable, wait_for_kafka
from streams.settings import Settings
from streams.topics import ensure_topics

__all__ = ["create_app", "health_of", "render_metrics"]

log = logging.getLogger(__name__)
CRASH_EXIT_CODE = 70
UNAVAILABLE_EXIT_CODE = 69


def render_metrics(m: EngineMetrics) -> str:
    """Prometheus text exposition (no account ids as labels: unbounded cardinality)."""
    lines = [
        "# TYPE xwatch_messages_in_total counter", f"xwatch_messages_in_total {m.messages_in}",
        "# TYPE xwatch_events_counted_total counter", f"xwatch_events_counted_total {m.events_counted}",
        "# TYPE xwatch_duplicate_events_total counter", f"xwatch_duplicate_events_total {m.duplicates}",
        "# TYPE xwatch_late_events_total counter", f"xwatch_late_events_total {m.late_events}",
        "# TYPE xwatch_batches_total counter", f"xwatch_batches_total {m.batches}",
        "# TYPE xwatch_snapshots_total counter", f"xwatch_snapshots_total {m.snapshots}",
        "# TYPE xwatch_restores_total counter", f"xwatch_restores_total {m.restores}",
        "# TYPE xwatch_busy_seconds_total counter", f"xwatch_busy_seconds_total {m.busy_seconds:.3f}",
        "# TYPE xwatch_assigned_partitions gauge", f"xwatch_assigned_partitions {m.partitions}",
        "# TYPE xwatch_partitions_assigned_total counter",
        f"xwatch_partitions_assigned_total {m.partitions_assigned}",
        "# TYPE xwatch_partitions_revoked_total counter",
        f"xwatch_partitions_revoked_total {m.partitions_revoked}",
        "# TYPE xwatch_tracked_accounts gauge", f"xwatch_tracked_accounts {m.tracked_accounts}",
        "# TYPE xwatch_watermark_ms gauge", f"xwatch_watermark_ms {m.watermark_ms}",
        "# TYPE xwatch_internal_errors_total counter",
        *(f'xwatch_internal_errors_total{{input="{k}"}} {m.internal_errors[k]}'
          for k in ("requests", "accounts", "summaries")),
        "# TYPE xwatch_careful_partitions gauge", f"xwatch_careful_partitions {m.careful_partitions}",
        "# TYPE xwatch_dlq_total counter",
    ]
    lines += [f'xwatch_dlq_total{{reason="{r}"}} {n}' for r, n in sorted(m.dlq.items())]
    lines.append("# TYPE xwatch_alerts_total counter")
    lines += [f'xwatch_alerts_total{{status="{s}"}} {n}' for s, n in sorted(m.alerts.items())]
    lines.append("# TYPE xwatch_account_records_rejected_total counter")
    lines += [f'xwatch_account_records_rejected_total{{reason="{r}"}} {n}'
              for r, n in sorted(m.account_records_rejected.items())]
    return "\n".join(lines) + "\n"


def health_of(engine: DetectionEngine, stall_s: float, now: float | None = None) -> tuple[dict[str, Any], bool]:
    """(body, ok) of ``/health``: ok while the engine has started, has not failed and its
    consume loop went round within ``stall_s`` seconds -- a hung loop (a deadlock, a
    call that never returns) fails the liveness probe, so Kubernetes restarts the pod."""
    now = time.monotonic() if now is None else now
    ready = engine.wait_ready(0)
    loop_age = now - engine.metrics.loop_at if engine.metrics.loop_at else None
    stalled = ready and loop_age is not None and loop_age > stall_s
    ok = engine.error is None and not engine.stopped and ready and not stalled
    status = ("ok" if ok else "failed" if engine.error is not None
              else "stalled" if stalled else "stopped" if engine.stopped else "starting")
    return {"status": status, "partitions": engine.metrics.partitions,
            "last_batch_at": engine.metrics.last_batch_at,
            "loop_age_s": None if loop_age is None else round(loop_age, 3)}, ok


def create_app(settings: Settings, engine: DetectionEngine | None = None) -> faust.App:
    """A Faust app running the detector. Nothing happens until a worker starts it."""
    engine = engine or DetectionEngine(settings, population_view=True)
    connection = settings.connection
    app = faust.App(
        settings.app_id,
        broker=connection.faust_broker(),
        broker_credentials=connection.faust_credentials(),
        store="memory://",
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        web_bind="0.0.0.0",
        broker_session_timeout=settings.session_timeout_s,
        topic_replication_factor=settings.replication_factor if settings.replication_factor > 0 else 1,
        datadir=os.path.join(tempfile.gettempdir(), f"xwatch-{settings.app_id}-{os.getpid()}"),
    )
    app.engine = engine  # type: ignore[attr-defined]

    class DetectionService(mode.Service):
        """Runs the batch engine in a thread for the lifetime of the worker."""

        _thread: threading.Thread | None = None

        async def on_start(self) -> None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, ensure_topics, settings)
            self._thread = threading.Thread(target=self._run, name="xwatch-engine", daemon=True)
            self._thread.start()

        def _run(self) -> None:
            try:
                engine.run()
            except BaseException as exc:  # a bug: crash loudly, never limp on
                log.critical("detection engine crashed: %r", exc, exc_info=True)
                engine.error = exc
                logging.shutdown()
                os._exit(CRASH_EXIT_CODE)

        async def on_stop(self) -> None:
            engine.stop()
            if self._thread is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 60)

    app.service(DetectionService)

    # -- the cross-account view: an agent on the reduced stream of account summaries --------
    view = CrossAccountView(settings)
    summaries_topic = app.topic(settings.coordination_topic, value_serializer="raw",
                                key_serializer="raw", partitions=1)
    alerts_topic = app.topic(settings.topics.alerts, value_serializer="raw", key_serializer="raw")
    last_summary = [time.monotonic()]

    async def in_thread(fn: Any) -> Any:   # blocking Kafka I/O off the event loop
        return await asyncio.get_running_loop().run_in_executor(None, fn)

    async def send_findings(findings: list[Any]) -> None:
        now_ms = int(time.time() * 1000)
        for f in findings:
            alert = finding_to_alert(f, now_ms)
            await alerts_topic.send(key=alert.key.encode(), value=encode_alert(alert))
            engine.metrics.alerts[alert.status] += 1

    def holds_summaries(tps: Any) -> bool:
        return any(tp.topic == settings.coordination_topic for tp in tps)

    @app.on_partitions_assigned.connect
    async def restore_view(sender: Any, assigned: Any, **kwargs: Any) -> None:
        if holds_summaries(assigned):
            await in_thread(view.assign)

    @app.on_partitions_revoked.connect
    async def save_view(sender: Any, revoked: Any, **kwargs: Any) -> None:
        if holds_summaries(revoked):
            await in_thread(view.revoke)

    @app.agent(summaries_topic)
    async def coordinate(stream: Any) -> None:
        """Links accounts that share networks, clients, templates or payment methods."""
        async for batch in stream.take(1000, within=0.5):
            if not view.restored:
                await in_thread(view.assign)
            last_summary[0] = time.monotonic()
            await send_findings(view.add(list(batch)))
            engine.metrics.internal_errors["summaries"] = view.internal_errors
            await in_thread(view.save)   # before the next batch, so before Faust commits this one

    @app.timer(interval=1.0)
    async def close_quiet_windows() -> None:
        # like the idle flush of the engine: when no summaries come, close what is open
        if view.owned and time.monotonic() - last_summary[0] >= 2 * settings.idle_partition_s:
            findings = view.flush()
            await send_findings(findings)
            await in_thread(view.save)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        body, ok = health_of(engine, settings.health_stall_s)
        return web.json(body, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.text(render_metrics(engine.metrics), content_type="text/plain")

    @app.timer(interval=30.0)
    async def log_progress() -> None:
        m = engine.metrics
        log.info("events=%d dlq=%d late=%d alerts=%s partitions=%d accounts=%d",
                 m.events_counted, sum(m.dlq.values()), m.late_events, dict(m.alerts),
                 m.partitions, m.tracked_accounts)

    del health, metrics, log_progress, coordinate, close_quiet_windows, restore_view, save_view
    return app


def run_worker(settings: Settings) -> int:
    """Run a worker in the foreground until SIGTERM/SIGINT; returns the exit code.

    Kafka not there yet (a broker restarting, a cluster still coming up) is waited for with
    backoff, one log line an attempt, until ``connect_deadline_s``; then one line and exit
    code 69 (EX_UNAVAILABLE), never a traceback.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=settings.log_level.upper().replace("CRIT", "CRITICAL").replace(
            "WARN", "WARNING"), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    try:
        wait_for_kafka(settings.connection, settings.connect_deadline_s)
        ensure_topics(settings)   # before Faust subscribes its agents
        app = create_app(settings)
    except (KafkaUnreachable, ConnectionError, ValueError) as exc:
        print(f"xwatch worker: {exc}", file=sys.stderr)
        return UNAVAILABLE_EXIT_CODE
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    started = time.monotonic()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        log.debug("worker ran %.1fs", time.monotonic() - started)
    return 0
