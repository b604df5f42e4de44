"""The core stays pure: no infrastructure imports, no clock, no environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "gwms_tasks" / "core"

FORBIDDEN_MODULES = (
    "redis",
    "celery",
    "kombu",
    "redbeat",
    "flower",
    "fastapi",
    "starlette",
    "uvicorn",
    "htcondor2",
    "htcondor",
    "web",
    "gwms_tasks.adapters",
    "gwms_tasks.services",
    "gwms_tasks.tasks",
    "gwms_tasks.frontend",
    "gwms_tasks.cli",
    "requests",
    "httpx",
    "subprocess",
    "socket",
)
FORBIDDEN_CALLS = {
    ("time", "time"),
    ("time", "monotonic"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("date", "today"),
    ("os", "getenv"),
}


def _core_modules() -> list[Path]:
    return sorted(CORE.glob("*.py"))


def _imported_names(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _is_forbidden(module: str) -> bool:
    return any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN_MODULES)


def test_core_has_modules_to_check() -> None:
    assert len(_core_modules()) >= 3


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: p.name)
def test_core_module_imports_no_infrastructure(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [name for name in _imported_names(tree) if _is_forbidden(name)]
    assert bad == [], f"{path.name} imports {bad}: the core must stay pure"


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: p.name)
def test_core_module_reads_no_clock_or_environment(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_CALLS:
                found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
            if node.value.id == "os" and node.attr == "environ":
                found.append(f"os.environ (line {node.lineno})")
    assert found == [], f"{path.name} uses {found}: time and environment come in as arguments"


def test_the_checker_catches_a_forbidden_import() -> None:
    tree = ast.parse("import redis\nfrom gwms_tasks.adapters import x\nfrom celery.app import A\n")
    assert [n for n in _imported_names(tree) if _is_forbidden(n)] == [
        "redis",
        "gwms_tasks.adapters",
        "celery.app",
    ]
