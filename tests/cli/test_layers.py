"""The layers hold: the contracts in pyproject.toml pass, and unit tests stay off the I/O layer.

``.ci/run`` runs ``lint-imports`` and ``mypy`` itself; this test gives the same answer to a
developer who runs pytest, and adds the one rule import-linter cannot see (tests are no package).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe, "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "netkit":  # ``from netkit import io``
                found += [(node.lineno, f"netkit.{alias.name}") for alias in node.names]
    return found


def test_no_unit_test_imports_the_io_layer() -> None:
    """Unit tests exercise pure code: anything that needs ``netkit.io`` is an integration test."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / "tests" / "unit").glob("*.py"))
        for line, module in _imported_modules(path)
        if module == "netkit.io" or module.startswith("netkit.io.")
    ]
    assert not offenders, "move these to tests/integration or the pure code to core/:\n" + "\n".join(offenders)
