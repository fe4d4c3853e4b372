"""Every golden output passes the real validators of its platform.

GitHub: actionlint (with shellcheck), GitHub's own workflow parser, zizmor (offline, medium+).
GitLab: the GitLab CI JSON schema. Make/shell: shellcheck, `bash -n`, `make -n`.
Findings of *style* level in commands copied from the user's config are the user's, so
shellcheck runs at warning level inside actionlint (SHELLCHECK_OPTS).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.golden_cases import case_dirs
from tests.tools import ROOT, node_script, require_tool, run

CASES = [c for c in case_dirs() if not (c / "exit_code").exists()]
GITHUB_FILES = sorted(p for c in CASES for p in (c / "github").rglob("*.yml"))
GITLAB_FILES = sorted(p for c in CASES for p in (c / "gitlab").rglob("*.yml"))
SHELL_FILES = sorted(p for c in CASES for p in (c / "shell").rglob("*.sh"))
MAKEFILES = sorted(p for c in CASES for p in (c / "make").rglob("Makefile"))
ZIZMOR_CONFIG = ROOT / ".ci" / "zizmor.yml"


def _rel(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def test_there_are_outputs_to_validate() -> None:
    assert GITHUB_FILES and GITLAB_FILES and SHELL_FILES and MAKEFILES


def test_actionlint() -> None:
    actionlint = require_tool("actionlint")
    require_tool("shellcheck")
    env = {**os.environ, "SHELLCHECK_OPTS": "--severity=warning"}
    r = run([actionlint, "-oneline", *_rel(GITHUB_FILES)], cwd=ROOT, env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_github_workflow_parser() -> None:
    r = run([*node_script("gha-validate.mjs"), *_rel(GITHUB_FILES)], cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_zizmor() -> None:
    zizmor = require_tool("zizmor")
    r = run(
        [zizmor, "--offline", "--config", str(ZIZMOR_CONFIG), "--min-severity", "medium",
         "--format", "plain", *_rel(GITHUB_FILES)],
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_gitlab_schema() -> None:
    cj = require_tool("check-jsonschema")
    r = run([cj, "--builtin-schema", "vendor.gitlab-ci", *_rel(GITLAB_FILES)], cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_shell_scripts_shellcheck_and_parse() -> None:
    sc = require_tool("shellcheck")
    r = run([sc, "-f", "gcc", *_rel(SHELL_FILES)], cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    for f in SHELL_FILES:
        r = run(["bash", "-n", str(f)])
        assert r.returncode == 0, f"{f}: {r.stderr}"


@pytest.mark.parametrize("makefile", MAKEFILES, ids=[m.parent.parent.name for m in MAKEFILES])
def test_makefile_dry_run_and_shellcheck(makefile: Path, tmp_path: Path) -> None:
    make = require_tool("make")
    sc = require_tool("shellcheck")
    r = run([make, "-n", "-f", str(makefile)], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    # The bash the Makefile carries lives in `define` blocks; check each as a script.
    text = makefile.read_text()
    blocks = re.findall(r"^define ([A-Za-z0-9_.-]+)\n(.*?)^endef$", text, re.M | re.S)
    assert blocks, "expected the Makefile to carry its bash in define blocks"
    for name, body in blocks:
        script = "#!/usr/bin/env bash\n" + body.replace("$$", "$")
        r = subprocess.run([sc, "-f", "gcc", "-"], input=script, capture_output=True, text=True)
        assert r.returncode == 0, f"{makefile}: define {name}:\n{r.stdout}"
