"""The pure core stays pure: nothing under ``models/`` may reach Kafka or the stream shell.

Two checks: a static one (every ``import`` statement in every ``models/**/*.py``, parsed with
``ast``) and a dynamic one (import every ``models`` module in a fresh interpreter and look at
``sys.modules``), so an import hidden behind a re-export or a dependency is caught as well.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
FORBIDDEN = frozenset({"confluent_kafka", "faust", "aiokafka", "mode", "streams"})


def forbidden_imports(source: str, filename: str = "<src>") -> list[str]:
    """Top-level names of forbidden modules imported by ``source`` (any nesting level),
    including ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Name) and node.func.id == "__import__")
                   or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"))):
            names = [node.args[0].value]
        found += [n for n in names if n.split(".")[0] in FORBIDDEN]
    return found


def model_files() -> list[Path]:
    return sorted(MODELS.rglob("*.py"))


def test_models_tree_is_found() -> None:
    names = {p.relative_to(MODELS).as_posix() for p in model_files()}
    assert {"monitor.py", "windows.py", "detectors/rules.py", "detectors/drift.py"} <= names


@pytest.mark.parametrize("path", model_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_model_module_imports_no_kafka_or_shell(path: Path) -> None:
    assert forbidden_imports(path.read_text(), str(path)) == []


@pytest.mark.parametrize("source, expected", [
    ("import faust", ["faust"]),
    ("import os, confluent_kafka.admin as a", ["confluent_kafka.admin"]),
    ("from aiokafka import AIOKafkaConsumer", ["aiokafka"]),
    ("def f():\n    from streams.records import RequestEvent", ["streams.records"]),
    ("from mode import Service", ["mode"]),
    ("import importlib\nimportlib.import_module('faust.app')", ["faust.app"]),
    ("__import__('confluent_kafka')", ["confluent_kafka"]),
    ("from . import streams\nimport modest\nimport numpy as np", []),
])
def test_the_import_check_itself(source: str, expected: list[str]) -> None:
    assert forbidden_imports(source) == expected


@pytest.mark.parametrize("path", model_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_model_module_does_not_pickle(path: Path) -> None:
    """Snapshots are plain data: no module of the core may even import a pickler."""
    tree = ast.parse(path.read_text(), str(path))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    assert names.isdisjoint({"pickle", "cloudpickle", "dill", "marshal", "shelve", "joblib"})


def test_importing_models_loads_no_kafka_or_shell_module() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import models, models.monitor\n"
        "for m in pkgutil.walk_packages(models.__path__, 'models.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {sorted(FORBIDDEN)!r})\n"
        "print(json.dumps({'bad': bad, 'models': sorted(n for n in sys.modules\n"
        "                  if n.startswith('models.'))}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bad"] == []
    assert {"models.monitor", "models.detectors.population", "models.scoring"} <= set(
        result["models"])


def test_every_name_a_package_exports_can_be_imported() -> None:
    import importlib

    for pkg in ("models.detectors",):
        module = importlib.import_module(pkg)
        for name in module.__all__:
            assert hasattr(module, name), f"{pkg}.__all__ names {name} but it is not there"
