"""bench/pipeline_throughput.py still runs: tiny sizes against the session broker.

It checks that the script works end to end (produce, raw consume, a real engine, the
report), not any rate: rates at 3,000 events and on a shared machine mean nothing.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from streams.records import EventDecoder, RequestEvent

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "pipeline_throughput.py"


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pipeline_throughput", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_generated_events_are_contract_valid_and_cover_every_account() -> None:
    wl = _bench_module().generate_events(2_000, 50, event_rate=5_000.0, seed=3)
    decoder = EventDecoder()
    decoded = [decoder.decode(v) for _k, v, _ts in wl.events]
    assert all(type(e) is RequestEvent for e in decoded), [e for e in decoded if type(e) is not RequestEvent][:3]
    assert len({e.event_id for e in decoded}) == 2_000
    assert len({e.account_id for e in decoded}) == wl.accounts_active == 50
    ts = [e.ts for e in decoded]
    assert ts == sorted(ts) and 0.3 < wl.event_time_s < 0.5
    assert all(k == e.account_id.encode() for (k, _v, _t), e in zip(wl.events, decoded, strict=True))
    assert 200 < wl.mean_bytes < 450


@pytest.mark.integration
def test_pipeline_throughput_smoke(kafka_bootstrap: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--events", "3000", "--accounts", "100", "--partitions", "2",
         "--warmup-events", "1000", "--batch-max", "400",
         "--broker", kafka_bootstrap, "--json", "--timeout", "25"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert any(line.startswith("ratio pipeline/raw :") for line in lines), proc.stdout
    assert any(line.startswith("issue 2 floor") for line in lines), proc.stdout
    assert any(line.startswith("warm-up (cold)") for line in lines), proc.stdout
    result = json.loads(lines[-1])
    run = result["pipeline"][0]
    # every event of warm-up and measured span is counted; the figures cover what came after
    # the batch that completed the warm-up (batches of at most 400)
    assert run["extra"]["counted"] == 4000 and run["extra"]["total_events"] == 4000, run
    warm = run["extra"]["warmup"]
    assert 1000 <= warm["events"] < 1400 and run["events"] == 4000 - warm["events"], run
    raw = result["raw"][0]
    assert raw["events"] + raw["extra"]["warmup"]["events"] == 4000, raw
    assert result["median"]["ratio"] > 0 and result["clean"] is True
