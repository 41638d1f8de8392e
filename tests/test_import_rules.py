"""The import-linter contracts in pyproject.toml hold, and would catch a broken rule."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ["threefs", "mgmtd", "meta", "storage", "client", "smallpond", "kernels", "parallel"]


def run_lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}
    cmd = [str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"), "--no-cache"]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def skeleton(tmp_path: Path) -> Path:
    """A copy of the package tree with empty modules (imports only where a test adds them)."""
    for package in PACKAGES:
        for init in (ROOT / package).rglob("__init__.py"):
            target = tmp_path / init.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_repository_keeps_every_contract():
    result = run_lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("mgmtd/bad.py", "import meta\n"),
        ("threefs/bad.py", "import storage\n"),
        ("client/bad.py", "import client.fuse\n"),
        ("smallpond/bad.py", "from client import cli\n"),
        ("kernels/bad.py", "import threefs\n"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, module, line):
    tree = skeleton(tmp_path)
    (tree / module).write_text(line)
    result = run_lint(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
