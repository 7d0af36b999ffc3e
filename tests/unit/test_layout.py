"""The layout keeps its promises: ``notify.message`` is pure (no database, broker or web
framework is imported by any of its modules), and every module imports on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "notify"
FORBIDDEN_IN_MESSAGE = ("sqlalchemy", "celery", "kombu", "fastapi", "starlette", "redis")


def _modules(folder: Path) -> list[str]:
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in folder.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    )


def _imported_after(module: str) -> set[str]:
    """Top-level packages loaded by importing ``module`` in a fresh interpreter."""
    probe = (
        f"import sys, {module}\n"
        "print('\\n'.join(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_message_package_has_modules() -> None:
    assert len(_modules(PACKAGE / "message")) >= 8


@pytest.mark.parametrize("module", _modules(PACKAGE / "message"))
def test_message_modules_import_no_database_broker_or_web_framework(module: str) -> None:
    loaded = _imported_after(module)
    assert not loaded & set(FORBIDDEN_IN_MESSAGE), (
        f"{module} pulls in {loaded & set(FORBIDDEN_IN_MESSAGE)}"
    )


def test_the_probe_would_see_a_forbidden_import() -> None:
    """The check above can fail: a domain module that uses the database is seen doing so."""
    assert "sqlalchemy" in _imported_after("notify.people.eligibility")
