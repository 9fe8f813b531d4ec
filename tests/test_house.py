"""House rules the build holds the code to, beside what ruff and mypy check in `make test`."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_of_the_three_packages_passes_400_lines_as_formatted() -> None:
    """`make test` checks `ruff format --check` first, so these are line counts as formatted."""
    modules = [p for pkg in ("router", "pricing", "policies") for p in (ROOT / pkg).rglob("*.py")]
    assert len(modules) > 100
    over = {str(p.relative_to(ROOT)): n for p in modules if (n := len(p.read_text().splitlines())) > 400}
    assert not over, over
