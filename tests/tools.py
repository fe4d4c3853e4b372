"""Locating and running the external validators the tests use (installed by .ci/setup)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / ".ci" / "validators" / "node"
NODE_BIN = NODE_DIR / "node_modules" / ".bin"
VALIDATORS = ROOT / ".ci" / "validators"
SHARED = ROOT.parent / "shared"


def find_tool(name: str) -> str | None:
    """A command from the project's venv (next to this Python), node_modules, or PATH."""
    for d in (Path(sys.executable).parent, NODE_BIN):
        p = d / name
        if p.exists():
            return str(p)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; run .ci/setup")
        pytest.skip(f"{name} is not installed; run .ci/setup")
    return path


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload,no-any-return]


def node_script(script: str) -> list[str]:
    node = require_tool("node")
    if not (NODE_DIR / "node_modules").exists():
        if os.environ.get("CI"):
            pytest.fail("node validators are not installed; run .ci/setup")
        pytest.skip("node validators are not installed; run .ci/setup")
    return [node, str(VALIDATORS / script)]


def git_repo(path: Path, branch: str = "main", remote: str | None = None) -> None:
    """Make `path` a git repo with one commit of everything in it (what checkout copies)."""
    def g(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)

    g("init", "-q", "-b", branch)
    g("config", "user.email", "ci@example.invalid")
    g("config", "user.name", "ci")
    g("config", "commit.gpgsign", "false")
    if remote is not None:
        g("remote", "add", "origin", remote)
    g("add", "-A")
    g("commit", "-q", "--allow-empty", "-m", "init")
