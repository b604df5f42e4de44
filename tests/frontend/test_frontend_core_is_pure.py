"""The frontend's pure modules (``gwms_tasks/frontend/core_*.py``) pass the core's purity check.

Same rules as ``tests/unit/test_core_is_pure.py`` (no infrastructure, clock or environment),
except that they may import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.unit.test_core_is_pure import FORBIDDEN_CALLS, _imported_names, _is_forbidden

FRONTEND = Path(__file__).resolve().parents[2] / "gwms_tasks" / "frontend"
PURE_PREFIX = "gwms_tasks.frontend.core_"


def _pure_modules() -> list[Path]:
    return sorted(FRONTEND.glob("core_*.py"))


def test_there_are_pure_frontend_modules() -> None:
    assert len(_pure_modules()) >= 8


@pytest.mark.parametrize("path", _pure_modules(), ids=lambda p: p.name)
def test_pure_frontend_module_imports_no_infrastructure(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = _imported_names(tree)
    bad = [n for n in names if _is_forbidden(n) and not n.startswith(PURE_PREFIX)]
    assert bad == [], f"{path.name} imports {bad}: the frontend's core must stay pure"


@pytest.mark.parametrize("path", _pure_modules(), ids=lambda p: p.name)
def test_pure_frontend_module_reads_no_clock_or_environment(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = [
        f"{node.value.id}.{node.attr} (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and (
            (node.value.id, node.attr) in FORBIDDEN_CALLS
            or (node.value.id, node.attr) == ("os", "environ")
        )
    ]
    assert found == [], f"{path.name} uses {found}: time and environment come in as arguments"
