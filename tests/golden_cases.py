"""The golden cases: golden/<case>/input.yml plus expected output per target.

Layout of one case:
    input.yml              the CircleCI config
    args                   optional: extra CLI arguments, one line
    stderr.txt             expected diagnostics of each target (paths shown as `input.yml`)
    exit_code              expected exit status when not 0
    github/…, gitlab/…, make/…, shell/…   expected files, as `cicompile -o DIR` writes them
    circleci/…             the processed config (`--target circleci`), for 2.0 inputs too
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from cicompile.cli import main
from click.testing import CliRunner

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
TARGETS = ("github", "gitlab", "make", "shell", "circleci")


@dataclass
class Outcome:
    exit_code: int
    stderr: str
    files: dict[str, str]  # "<target>/<relative path>" → text


def case_dirs() -> list[Path]:
    return sorted(p for p in GOLDEN.iterdir() if (p / "input.yml").exists())


def compile_case(case: Path, tmp: Path) -> Outcome:
    args_file = case / "args"
    extra = shlex.split(args_file.read_text()) if args_file.exists() else []
    runner = CliRunner()
    files: dict[str, str] = {}
    stderr = ""
    exit_code = 0
    (tmp / "input.yml").write_text((case / "input.yml").read_text())
    cwd = os.getcwd()
    os.chdir(tmp)  # diagnostics then name the input `input.yml`, as the goldens show it
    try:
        for target in TARGETS:
            out = tmp / "out" / target
            result = runner.invoke(
                main, ["--target", target, "-o", str(out), *extra, "input.yml"]
            )
            if result.exception and not isinstance(result.exception, SystemExit):
                raise result.exception
            if result.stderr:
                stderr += f"# --target {target}\n{result.stderr}"
            if target == "github":
                exit_code = result.exit_code
            elif result.exit_code != exit_code:
                raise AssertionError(f"{target}: exit {result.exit_code}, github gave {exit_code}")
            if out.exists():
                for f in sorted(out.rglob("*")):
                    if f.is_file():
                        files[f"{target}/{f.relative_to(out)}"] = f.read_text()
    finally:
        os.chdir(cwd)
    return Outcome(exit_code, stderr, files)


def expected_files(case: Path) -> dict[str, str]:
    out = {}
    for target in TARGETS:
        d = case / target
        if d.exists():
            for f in sorted(d.rglob("*")):
                if f.is_file():
                    out[f"{target}/{f.relative_to(d)}"] = f.read_text()
    return out
