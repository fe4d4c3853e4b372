"""Compiling a config for the make or shell target and running the result in a temp dir."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cicompile import compile_config

from tests.tools import git_repo, require_tool

OUTPUT = {"make": "Makefile", "shell": "ci.sh"}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def status(self, node: str, workflow: str = "wf") -> str:
        """The recorded status of a node ("" when the node has no status file)."""
        f = self.run_dir / "status" / workflow / node
        return f.read_text().strip() if f.exists() else ""

    def statuses(self, workflow: str = "wf") -> dict[str, str]:
        d = self.run_dir / "status" / workflow
        return {f.name: f.read_text().strip() for f in d.iterdir() if "." not in f.name}


def compile_text(config: str, target: str) -> str:
    result = compile_config(config, target)
    assert result.ok, [d.render() for d in result.diagnostics]
    return result.files[OUTPUT[target]]


def project(tmp: Path, config: str, target: str, *, branch: str = "main") -> Path:
    """A git repo with a few source files and the compiled output in it."""
    src = tmp / "src"
    src.mkdir()
    (src / "README.md").write_text("a project\n")
    (src / "lib").mkdir()
    (src / "lib" / "code.txt").write_text("tracked code\n")
    (src / ".gitignore").write_text("ignored.txt\n")
    (src / OUTPUT[target]).write_text(compile_text(config, target))
    git_repo(src, branch)
    return src


def run(
    target: str,
    src: Path,
    env: dict[str, str] | None = None,
    *,
    args: tuple[str, ...] = (),
    make_vars: dict[str, str] | None = None,
    jobs: int = 4,
    timeout: float = 60,
) -> Run:
    """`make -j4 [VAR=value...] [args]` or `bash ci.sh [args]` in `src`, without a terminal."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not re.match(r"(CIRCLE_|CICOMPILE_|MAKE|MFLAGS$|CI$)", k)
    }
    full_env.update(env or {})
    if target == "make":
        cmd = [require_tool("make"), f"-j{jobs}"]
        cmd += [f"{k}={v}" for k, v in (make_vars or {}).items()]
    else:
        assert not make_vars
        cmd = [require_tool("bash"), "ci.sh"]
    cmd += list(args)
    p = subprocess.run(
        cmd,
        cwd=src,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,  # no controlling terminal: approvals cannot prompt
        stdin=subprocess.DEVNULL,
    )
    run_dir = Path(full_env.get("CICOMPILE_RUN_DIR", src / ".cicompile-run"))
    return Run(p.returncode, p.stdout, p.stderr, run_dir)


def failed_exit(target: str) -> int:
    """The exit status of a run in which a job failed: make reports a failed recipe as 2."""
    return 2 if target == "make" else 1


def define_bodies(makefile: str) -> dict[str, str]:
    """The `define` blocks of a Makefile, with `$$` turned back into `$`."""
    return {
        name: body.replace("$$", "$")
        for name, body in re.findall(r"^define (\S+)\n(.*?)\nendef$", makefile, re.S | re.M)
    }

