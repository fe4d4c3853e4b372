"""Scheduled workflows (`triggers: - schedule`, semantics §5.7) on every target.

On CircleCI a scheduled workflow runs only on its schedule, on the branches its filter
allows, and never on a push; push workflows never run on a schedule. Expectations below are
written by hand from that rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cicompile import compile_config, ir
from cicompile.diagnostics import ConfigError, Diagnostics
from cicompile.frontend.circleci import parse_config
from cicompile.targets.report import render_report

from tests.gha_runner import WorkflowRunner
from tests.gitlab_helpers import make_repo, run_pipeline
from tests.local_helpers import (
    Run,
    project,
    run,
)

CONFIG = """
version: 2.1
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo building}]
  nightly-test:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo nightly}]
  nightly-report:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo report}]
workflows:
  commit:
    jobs: [build]
  nightly:
    triggers:
      - schedule:
          cron: "0 2 * * *"
          filters:
            branches:
              only: [main, /release\\/.*/]
    jobs:
      - nightly-test
      - nightly-report:
          requires: [nightly-test]
          filters: {branches: {ignore: /release\\/.*/}}
"""

# (trigger, branch) → the jobs that run, by hand from §5.7 and the filters above.
EXPECTED = {
    ("push", "main"): {"build"},
    ("push", "release/1"): {"build"},
    ("schedule", "main"): {"nightly-test", "nightly-report"},
    ("schedule", "release/1"): {"nightly-test"},
    ("schedule", "dev"): set(),
}


def _compile(target: str) -> tuple[dict[str, str], list[str]]:
    result = compile_config(CONFIG, target, path="config.yml")
    assert result.ok, [d.render() for d in result.diagnostics]
    return result.files, [d.code for d in result.diagnostics]


# ---- front end ---------------------------------------------------------------------------------


def _parse(text: str) -> tuple[ir.Pipeline | None, Diagnostics]:
    diags = Diagnostics()
    try:
        return parse_config(text, "config.yml", diags), diags
    except ConfigError:  # the diagnostics say why
        return None, diags


def test_triggers_become_schedules() -> None:
    pipeline, diags = _parse(CONFIG)
    assert pipeline is not None
    assert not [d for d in diags if d.code == "unsupported-feature"]
    commit, nightly = pipeline.workflows
    assert commit.schedules == ()
    [schedule] = nightly.schedules
    assert schedule.cron == "0 2 * * *"
    assert schedule.branches.only is not None
    assert [p.text for p in schedule.branches.only] == ["main", "release\\/.*"]


def test_a_schedule_needs_cron_and_branch_filters() -> None:
    bad = CONFIG.split("    triggers:")[0] + (
        "    triggers: [{schedule: {filters: {branches: {only: main}}}}, {schedule: {cron: x}}]\n"
        "    jobs: [nightly-test]\n"
    )
    _, diags = _parse(bad)
    assert sum(d.code == "missing-key" for d in diags) == 2, [d.render() for d in diags]


# ---- GitHub -------------------------------------------------------------------------------------


def test_github_triggers() -> None:
    files, codes = _compile("github")
    commit = yaml.safe_load(files[".github/workflows/commit.yml"])[True]
    nightly = yaml.safe_load(files[".github/workflows/nightly.yml"])[True]
    assert set(commit) == {"push", "workflow_dispatch"}
    assert nightly == {"schedule": [{"cron": "0 2 * * *"}], "workflow_dispatch": {}}
    assert "schedule-default-branch" in codes


@pytest.mark.e2e
@pytest.mark.parametrize(("trigger", "branch"), sorted(EXPECTED))
def test_github_runs(runner: WorkflowRunner, tmp_path: Path, trigger: str, branch: str) -> None:
    files, _ = _compile("github")
    ran: set[str] = set()
    for rel, text in files.items():
        path = tmp_path / Path(rel).name
        path.write_text(text)
        results = runner.run(path, "branch", branch, event=trigger)
        ran |= {j for j, res in results.items() if res.result == "success" and j != "circleci-gate"}
    assert ran == EXPECTED[(trigger, branch)]


# ---- GitLab -------------------------------------------------------------------------------------


def test_gitlab_rules_and_report() -> None:
    files, codes = _compile("gitlab")
    doc = yaml.safe_load(files[".gitlab-ci.yml"])
    assert doc["build"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE != "schedule" && ($CI_COMMIT_BRANCH)'}]
    assert doc["nightly-test"]["rules"][0]["if"].startswith(
        '$CI_PIPELINE_SOURCE == "schedule" && (')
    assert "gitlab-schedule" in codes
    result = compile_config(CONFIG, "gitlab", path="config.yml")
    pipeline, _ = _parse(CONFIG)
    assert pipeline is not None
    report = render_report(pipeline, "gitlab", result.diagnostics)
    assert "create a GitLab pipeline schedule" in report and "`0 2 * * *`" in report
    assert "among `main`, `/release\\/.*/`" in report


def test_no_source_rules_without_schedules() -> None:
    """Without scheduled workflows there is no GitLab schedule to guard against."""
    text = CONFIG.split("  nightly:\n")[0]
    result = compile_config(text, "gitlab", path="config.yml")
    assert "CI_PIPELINE_SOURCE" not in result.files[".gitlab-ci.yml"]


@pytest.mark.e2e
@pytest.mark.parametrize(("trigger", "branch"), sorted(EXPECTED))
def test_gitlab_runs(tmp_path: Path, trigger: str, branch: str) -> None:
    files, _ = _compile("gitlab")
    repo = make_repo(tmp_path / "repo", files[".gitlab-ci.yml"], branch=branch)
    r = run_pipeline(repo, "--variable", f"CI_PIPELINE_SOURCE={trigger}")
    assert r.ran == EXPECTED[(trigger, branch)], r.output
    assert not r.failed


# ---- make and shell -----------------------------------------------------------------------------




def _ran(r: Run, workflows: tuple[str, ...] = ("commit", "nightly")) -> set[str]:
    out: set[str] = set()
    for wf in workflows:
        d = r.run_dir / "status" / wf
        if d.is_dir():
            out |= {f.name for f in d.iterdir() if f.read_text().strip() == "success"}
    return out


@pytest.mark.e2e
@pytest.mark.parametrize(("trigger", "branch"), sorted(EXPECTED))
def test_local_runs(target: str, tmp_path: Path, trigger: str, branch: str) -> None:
    src = project(tmp_path, CONFIG, target)
    env = {"CIRCLE_BRANCH": branch}
    if trigger == "schedule":
        env["CICOMPILE_TRIGGER"] = "schedule"
    r = run(target, src, env)
    assert r.returncode == 0, r.output
    assert _ran(r) == EXPECTED[(trigger, branch)], r.output


@pytest.mark.e2e
def test_local_named_workflow_runs_whatever_its_trigger(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, CONFIG, target)
    args = ("workflow.nightly",) if target == "make" else ("nightly",)
    r = run(target, src, args=args)
    assert r.returncode == 0, r.output
    assert _ran(r) == {"nightly-test", "nightly-report"}
    r = run(target, src, {"CICOMPILE_TRIGGER": "cron"})
    assert r.returncode == 2 and "CICOMPILE_TRIGGER must be push or schedule" in r.output
