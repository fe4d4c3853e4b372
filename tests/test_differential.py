"""Differential fidelity: which jobs exist, and in which order, on every target, against the
independent reference evaluator (tests/reference.py) — for every golden config and every
corpus config, for the events push to main, feature/x, a branch matching each regex branch
filter, tags v1.2.3 and nightly.

GitHub: the gate job's bash, run. GitLab: gitlab-ci-local's rule evaluation (`--list-json`).
make/shell: the generated files run with CICOMPILE_DRY_RUN=1 (statuses decided, approvals
granted, no step executed). Ordering: the transitive closure of each target's dependency
edges, restricted to the existing jobs, equals the closure of `requires` among them.

Workflows with schedule `triggers` or a run-time `when`/`unless` are not compared: both are
warned approximations (unsupported-feature / runtime-condition). GitHub runs on every config
by default; the slower targets on a sample, or on everything with --long-fuzz.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.corpus_tools import (
    EXPECTED_ERRORS,
    INVALID,
    compiled,
    config_id,
    corpus_files,
    expectation,
    github_view,
    gitlab_view,
    golden_inputs,
    invalid_manifest,
    local_view,
    mismatches,
)
from tests.tools import ROOT, require_tool

MISMATCH_FILE = ROOT / ".pytest_cache" / "cicompile-differential.txt"


def inputs() -> list[Path]:
    return golden_inputs() + [p for p in corpus_files() if p.name not in EXPECTED_ERRORS] + [
        INVALID / r["file"] for r in invalid_manifest() if r["on_default_branch"] == "yes"]


@pytest.fixture(scope="module")
def long_fuzz(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--long-fuzz"))


def _check(target: str, paths: list[Path], tmp_path: Path) -> None:
    problems: list[str] = []
    events = 0
    for i, p in enumerate(paths):
        result = compiled(p, target)
        assert result.ok, (p, target)
        exp = expectation(p, compiled(p, "github"))
        events += len(exp.events)
        if target == "github":
            view = github_view(result, exp.events)
        elif target == "gitlab":
            view = gitlab_view(result, exp.events, tmp_path / f"repo{i}")
        else:
            view = local_view(result, target, exp.events, tmp_path / f"run{i}")
        problems += [f"{config_id(p)}: {m}" for m in mismatches(exp, view, target)]
    MISMATCH_FILE.parent.mkdir(exist_ok=True)
    with MISMATCH_FILE.open("a") as f:
        f.write(f"{target}: {len(paths)} configs, {events} events, {len(problems)}"
                " mismatches\n")
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)


def test_github_gate_agrees_with_reference(tmp_path: Path) -> None:
    _check("github", inputs(), tmp_path)


@pytest.mark.parametrize("target", ["make", "shell"])
def test_local_targets_agree_with_reference(target: str, tmp_path: Path,
                                            long_fuzz: bool) -> None:
    require_tool("make")
    paths = inputs() if long_fuzz else inputs()[::10]
    _check(target, paths, tmp_path)


def test_gitlab_rules_agree_with_reference(tmp_path: Path, long_fuzz: bool) -> None:
    from tests.gitlab_helpers import require_gcl

    require_gcl()
    paths = inputs() if long_fuzz else inputs()[::8]
    _check("gitlab", paths, tmp_path)
