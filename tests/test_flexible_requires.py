"""Flexible requires, serial-group, override-with and job groups (semantics §1, §5.2, §5.3).

Expected outcomes of runs come from the independent reference evaluator
(`tests/reference.job_statuses`) or are written by hand; never from the compiler's own code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from cicompile import build_ir, compile_config
from cicompile.diagnostics import ConfigError, Diagnostics
from cicompile.ir import JobStatus, Pipeline

from tests import reference
from tests.gha_runner import WorkflowRunner
from tests.gitlab_helpers import make_repo, run_pipeline
from tests.local_helpers import failed_exit, project, run

e2e = pytest.mark.e2e


def pipeline_of(text: str, orb_dir: Path | None = None) -> tuple[Pipeline, Diagnostics]:
    diags = Diagnostics()
    p = build_ir(text, "config.yml", diags, orb_dir=orb_dir)
    assert isinstance(p, Pipeline)
    return p, diags


def codes(diags: Diagnostics, severity: str = "warning") -> list[str]:
    return [d.code for d in diags.sorted() if d.severity == severity]


def compiled(text: str, target: str, orb_dir: Path | None = None) -> dict[str, str]:
    r = compile_config(text, target, orb_dir=orb_dir)
    assert r.ok, [d.render() for d in r.diagnostics]
    return r.files


# ---- the front end and the passes ------------------------------------------------------------

JOBS = """
version: 2.1
jobs:
  j:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo hi}]
"""


def workflow(entries: str) -> str:
    return JOBS + "workflows:\n  wf:\n    jobs:\n" + entries


def test_statuses_per_requirement() -> None:
    p, diags = pipeline_of(workflow("""\
      - j: {name: a}
      - j: {name: b}
      - j: {name: c, requires: [a, {b: failed}]}
      - j: {name: d, requires: [{a: [success, failed]}, {b: terminal}]}
      - j: {name: e, requires: [{a: not_run}, {a: canceled}]}
"""))
    wf = p.workflows[0]
    c, d, e = wf.node("c"), wf.node("d"), wf.node("e")
    assert c.requires == ("a", "b")
    assert c.allowed("a") == {JobStatus.SUCCESS} and c.allowed("b") == {JobStatus.FAILED}
    assert d.allowed("a") == {JobStatus.SUCCESS, JobStatus.FAILED}
    assert d.allowed("b") == set(JobStatus)
    assert e.requires == ("a",) and e.allowed("a") == {JobStatus.NOT_RUN, JobStatus.CANCELED}
    assert not wf.node("a").flexible and c.flexible
    assert codes(diags) == []


@pytest.mark.parametrize("requires, message", [
    ("[{a: failure}]", "unknown status 'failure'"),
    ("[{a: []}]", "lists no status"),
    ("[{a: {x: y}}]", "must be a string"),
])
def test_bad_statuses_are_errors(requires: str, message: str) -> None:
    diags = Diagnostics()
    with pytest.raises(ConfigError):
        build_ir(workflow(f"      - j: {{name: a}}\n      - j: {{requires: {requires}}}\n"),
                 "config.yml", diags)
    assert any(message in d.message and d.span is not None for d in diags.sorted()), [
        d.render() for d in diags.sorted()]


def test_unauthorized_is_warned_unless_terminal() -> None:
    _, diags = pipeline_of(workflow("""\
      - j: {name: a}
      - j: {name: b, requires: [{a: [failed, unauthorized]}]}
      - j: {name: c, requires: [{a: [success, failed, canceled, unauthorized, not_run]}]}
"""))
    assert codes(diags) == ["requires-unauthorized"]
    assert diags.sorted()[0].span is not None and diags.sorted()[0].span.line == 11


def test_flexible_edges_are_never_reduced() -> None:
    p, _ = pipeline_of(workflow("""\
      - j: {name: a}
      - j: {name: b, requires: [{a: failed}]}
      - j: {name: c, requires: [a, b]}
      - j: {name: d, requires: [{a: terminal}, c]}
      - j: {name: e, requires: [a, {c: [success, failed]}]}
      - j: {name: f, requires: [a, c]}
"""))
    wf = p.workflows[0]
    # c: b succeeded only if a *failed*, so b says nothing about a's success.
    assert wf.node("c").needs == ("a", "b")
    assert wf.node("d").needs == ("a", "c")  # a flexible requirement stays
    assert wf.node("e").needs == ("a", "c")  # c accepts failed: c says nothing about a
    assert wf.node("f").needs == ("c",)  # c itself requires a, success only


def test_success_paths_are_still_reduced() -> None:
    p, _ = pipeline_of(workflow("""\
      - j: {name: a}
      - j: {name: b, requires: [a]}
      - j: {name: c, requires: [a, b, {b: success}]}
      - j: {name: d, requires: [{a: failed}]}
      - j: {name: e, requires: [d, a, b]}
"""))
    wf = p.workflows[0]
    assert wf.node("c").needs == ("b",)
    assert wf.node("e").needs == ("d", "b")  # a: implied by b, not by d


def test_serial_group_values() -> None:
    p, diags = pipeline_of(JOBS + """\
parameters:
  env: {type: string, default: prod}
workflows:
  wf:
    jobs:
      - j: {name: a, serial-group: deploy/<< pipeline.parameters.env >>}
      - j: {name: b, serial-group: "branch-<< pipeline.git.branch >>"}
      - j: {name: c, serial-group: "by-<< pipeline.trigger_source >>"}
""")
    wf = p.workflows[0]
    assert wf.node("a").serial_group == "deploy/prod"
    assert wf.node("b").serial_group == "branch-${CIRCLE_BRANCH}"  # read at run time
    assert wf.node("c").serial_group == "by-<< pipeline.trigger_source >>"
    assert codes(diags) == ["runtime-pipeline-value"]  # for c only
    diags = Diagnostics()
    with pytest.raises(ConfigError):
        build_ir(workflow("      - j: {serial-group: 'a b'}\n"), "config.yml", diags)
    assert codes(diags, "error") == ["invalid-value"]


# ---- GitHub ------------------------------------------------------------------------------

def test_github_reads_results() -> None:
    doc = yaml.safe_load(compiled(workflow("""\
      - j: {name: a}
      - j: {name: b, requires: [{a: failed}], serial-group: one/at-a-time}
      - j: {name: c, requires: [{a: [success, not_run]}, b]}
      - j: {name: d, requires: [{a: terminal}]}
      - j: {name: e, requires: [{a: canceled}]}
      - j: {name: f, requires: [a]}
      - j: {name: g, serial-group: "deploy-<< pipeline.git.branch >>"}
"""), "github")[".github/workflows/wf.yml"])
    jobs = doc["jobs"]
    assert "circleci-gate" not in jobs  # no filters: no gate
    assert jobs["b"]["if"] == "${{ !cancelled() && needs.a.result == 'failure' }}"
    assert jobs["b"]["concurrency"] == {"group": "one/at-a-time", "cancel-in-progress": False}
    assert jobs["g"]["concurrency"]["group"] == (
        "deploy-${{ github.ref_type == 'branch' && github.ref_name || '' }}")
    assert jobs["c"]["if"] == ("${{ !cancelled() && (needs.a.result == 'success' ||"
                               " needs.a.result == 'skipped') && needs.b.result == 'success' }}")
    assert jobs["d"]["if"] == "${{ always() }}"
    assert jobs["e"]["if"] == "${{ always() && needs.a.result == 'cancelled' }}"
    assert "if" not in jobs["f"]


def test_github_gate_ignores_filtered_requirements() -> None:
    doc = yaml.safe_load(compiled(workflow("""\
      - j: {name: a, filters: {branches: {only: main}}}
      - j: {name: b}
      - j: {name: c, requires: [{a: failed}, b]}
"""), "github")[".github/workflows/wf.yml"])
    assert doc["jobs"]["c"]["if"] == (
        "${{ !cancelled() && needs.circleci-gate.outputs.c == 'true'"
        " && (needs.circleci-gate.outputs.a != 'true' || needs.a.result == 'failure')"
        " && (needs.circleci-gate.outputs.b != 'true' || needs.b.result == 'success') }}")


def test_graph_labels_flexible_edges() -> None:
    from cicompile.graph import to_dot, to_mermaid

    p, _ = pipeline_of(workflow("""\
      - j: {name: a}
      - j: {name: b, requires: [{a: [success, failed]}]}
      - j: {name: c, requires: [{a: terminal}, b]}
"""))
    assert to_mermaid(p).splitlines()[-3:] == [
        "  n0 -->|success, failed| n1", "  n0 -->|terminal| n2", "  n1 --> n2"]
    assert "w0_n0 -> w0_n2 [label=\"terminal\"];" in to_dot(p)


# ---- GitLab ------------------------------------------------------------------------------

def gitlab(text: str) -> tuple[dict[str, Any], list[str]]:
    r = compile_config(text, "gitlab")
    assert r.ok
    return (cast(dict[str, Any], yaml.safe_load(r.files[".gitlab-ci.yml"])),
            [d.code for d in r.diagnostics if d.severity == "warning"])


def test_gitlab_when_exact_and_approximated() -> None:
    doc, warnings = gitlab(workflow("""\
      - j: {name: a}
      - j: {name: b}
      - j: {name: on-fail, requires: [{a: failed}]}
      - j: {name: cleanup, requires: [{a: terminal}, {b: terminal}]}
      - j: {name: mixed, requires: [{a: failed}, b]}
      - j: {name: either, requires: [{a: [success, failed]}]}
      - j: {name: grouped, requires: [a], serial-group: deploy/prod}
      - j: {name: per-branch, serial-group: "deploy/<< pipeline.git.branch >>"}
"""))
    def when(job: str) -> str | None:
        rules = doc[job].get("rules", [{}])
        assert len(rules) == 1
        found = rules[0].get("when", doc[job].get("when"))
        return None if found is None else str(found)

    assert when("on-fail") == "on_failure"
    assert when("cleanup") == "always"
    assert when("mixed") == "on_failure"  # approximated
    assert when("either") == "always"  # approximated
    assert doc["grouped"]["resource_group"] == "deploy/prod"
    assert doc["per-branch"]["resource_group"] == "deploy/${CI_COMMIT_BRANCH}"
    assert when("grouped") is None
    assert warnings.count("approximated-requires") == 2
    assert warnings.count("approximated-serial-group") == 2


# ---- a real run: make, shell, gitlab-ci-local ----------------------------------------------

FLEX = """
version: 2.1
jobs:
  step:
    parameters:
      fail: {type: boolean, default: false}
    docker: [{image: cimg/base:stable}]
    steps:
      - checkout
      - when:
          condition: << parameters.fail >>
          steps:
            - run: if [ -e fail ]; then echo failing on purpose; exit 1; fi
      - run: echo "$CIRCLE_JOB ran"
workflows:
  wf:
    jobs:
      - step: {name: build, fail: true}
      - step: {name: rollback, requires: [{build: failed}]}
      - step: {name: deploy, requires: [build]}
      - step: {name: cleanup, requires: [{deploy: terminal}]}
      - step: {name: after-skip, requires: [{deploy: not_run}]}
      - step: {name: either-way, requires: [{build: [success, failed]}, {rollback: terminal}]}
      - step: {name: nightly-only, filters: {branches: {only: nightly}}}
      # On main, nightly-only is filtered out: only deploy's status counts.
      - step: {name: audit, requires: [{deploy: terminal}, {nightly-only: failed}]}
"""

LOCAL = {"success": "success", "failed": "failed", "not_run": "blocked"}


def expected(failing: set[str]) -> dict[str, str]:
    config = reference.expanded_config(FLEX)
    existing = reference.existing_jobs(config, branch="main")["wf"]
    return reference.job_statuses(config, "wf", existing, failing)


def test_reference_statuses() -> None:
    """The reference itself, against the outcomes written out by hand."""
    assert expected({"build"}) == {"build": "failed", "rollback": "success",
                                   "deploy": "not_run", "cleanup": "success",
                                   "after-skip": "success", "either-way": "success",
                                   "audit": "success"}
    assert expected(set()) == {"build": "success", "rollback": "not_run", "deploy": "success",
                               "cleanup": "success", "after-skip": "not_run",
                               "either-way": "success", "audit": "success"}


GITHUB_RESULT = {"success": "success", "failure": "failed", "skipped": "not_run"}


@e2e
@pytest.mark.parametrize("build_fails", [True, False])
def test_github_runs_follow_statuses(tmp_path: Path, build_fails: bool) -> None:
    """The workflow run by tests/gha_runner.py (GitHub's expression engine for every `if:`)."""
    src = tmp_path / "src"
    src.mkdir()
    if build_fails:
        (src / "fail").write_text("")
    workflow = tmp_path / "wf.yml"
    workflow.write_text(compiled(FLEX, "github")[".github/workflows/wf.yml"])
    runner = WorkflowRunner(tmp_path / "run", src)
    try:
        results = runner.run(workflow, "branch", "main")
    finally:
        runner.close()
    got = {j: GITHUB_RESULT[r.result] for j, r in results.items() if j != "circleci-gate"}
    want = expected({"build"} if build_fails else set())
    assert got == {**want, "nightly-only": "not_run"}  # filtered out: the gate skips it


@e2e
@pytest.mark.parametrize("build_fails", [True, False])
def test_local_runs_follow_statuses(target: str, tmp_path: Path, build_fails: bool) -> None:
    src = project(tmp_path, FLEX, target)
    if build_fails:
        (src / "fail").write_text("")
    r = run(target, src)
    want = {j: LOCAL[s] for j, s in expected({"build"} if build_fails else set()).items()}
    assert r.statuses() == {**want, "nightly-only": "skipped"}, r.output  # filtered out
    assert r.returncode == (failed_exit(target) if build_fails else 0), r.output
    assert ("[rollback] rollback ran" in r.stdout) == build_fails
    if build_fails:
        assert "blocked: it requires build to be success, which is failed" in r.stdout


@e2e
def test_gitlab_ci_local_runs_on_failure_and_always(tmp_path: Path) -> None:
    doc, _ = gitlab(FLEX)
    repo = make_repo(tmp_path / "repo", yaml.safe_dump(doc), {"fail": ""})
    result = run_pipeline(repo)
    assert expected({"build"})["rollback"] == "success"
    assert result.failed == {"build"}, result.output
    # `rollback` (`when: on_failure`) runs, `deploy` (on_success) does not. gitlab-ci-local
    # never finishes a job skipped for its needs, so it starts nothing after `deploy`
    # (`cleanup` and `after-skip`, which GitLab itself would decide).
    assert result.passed == {"rollback", "either-way"}, result.output
    assert "rollback ran" in result.log("rollback")


# ---- serial-group on the local targets -------------------------------------------------------

SERIAL = """
version: 2.1
jobs:
  inside:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: |
          if ! mkdir '@OUT@/inside' 2>/dev/null; then echo "overlap in $CIRCLE_JOB"; exit 1; fi
          sleep 1
          rmdir '@OUT@/inside'
workflows:
  wf:
    jobs:
      - inside: {name: one@GROUP@}
      - inside: {name: two@GROUP@}
      - inside: {name: three@GROUP@}
"""


@e2e
@pytest.mark.parametrize("grouped", [True, False])
def test_serial_group_never_overlaps(target: str, tmp_path: Path, grouped: bool) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # The branch is read at run time: the lock is release/main's.
    group = ", serial-group: 'release/<< pipeline.git.branch >>'" if grouped else ""
    config = SERIAL.replace("@OUT@", str(out)).replace("@GROUP@", group)
    src = project(tmp_path, config, target)
    r = run(target, src, {"CICOMPILE_LOCK_DIR": str(tmp_path / "locks")})
    if grouped:
        assert r.returncode == 0, r.output
        assert set(r.statuses().values()) == {"success"}
        assert "waiting for serial group release/main" in r.stdout
        assert (tmp_path / "locks" / "release%2Fmain.lock").exists()
    else:  # the control: the same jobs do overlap without the group
        assert r.returncode == failed_exit(target), r.output
        assert "overlap in" in r.stdout


def _path_without(tool: str, bin_dir: Path) -> str:
    """A PATH of one directory linking every command of this PATH but `tool`."""
    bin_dir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            link = bin_dir / entry.name
            if entry.name != tool and not link.exists() and os.access(entry.path, os.X_OK):
                link.symlink_to(entry.path)
    return str(bin_dir)


@e2e
def test_serial_group_without_flock(target: str, tmp_path: Path) -> None:
    """Where flock is missing (macOS), a lock directory serialises the jobs instead."""
    out = tmp_path / "out"
    out.mkdir()
    config = SERIAL.replace("@OUT@", str(out)).replace("@GROUP@", ", serial-group: shared")
    src = project(tmp_path, config, target)
    locks = tmp_path / "locks"
    r = run(target, src, {"CICOMPILE_LOCK_DIR": str(locks),
                          "PATH": _path_without("flock", tmp_path / "bin")})
    assert r.returncode == 0, r.output
    assert set(r.statuses().values()) == {"success"}
    assert "waiting for serial group shared" in r.stdout
    assert not (locks / "shared.lock").exists()  # no flock: not its lock file
    assert not (locks / "shared.d").exists()  # released


# ---- override-with -------------------------------------------------------------------------

OVERRIDE = """
version: 2.1
orbs:
  platform: @ORB@
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo our build}]
  test:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo our test}]
workflows:
  wf:
    jobs:
      - build: {override-with: platform/build, who: ci}
      - test: {override-with: platform/test, requires: [build]}
"""

ORB = """
jobs:
  build:
    parameters:
      who: {type: string, default: nobody}
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo platform build for << parameters.who >>}]
"""


def _commands(p: Pipeline, node: str) -> list[str]:
    job = p.workflows[0].node(node).job
    assert job is not None
    return [getattr(s, "command", "") for s in p.job(job).steps]


def test_override_with_inline_orb() -> None:
    inline = "\n    " + ORB.strip().replace("\n", "\n    ")
    p, diags = pipeline_of(OVERRIDE.replace("@ORB@", inline))
    assert _commands(p, "build") == ["echo platform build for ci"]
    assert _commands(p, "test") == ["echo our test"]  # the orb has no `test`: ours runs
    assert p.workflows[0].node("test").requires == ("build",)
    assert codes(diags) == []


def test_override_with_orb_dir(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "platform@1.0.0.yml").write_text("version: 2.1\n" + ORB)
    config = OVERRIDE.replace("@ORB@", "acme/platform@1.0.0")
    p, diags = pipeline_of(config, orb_dir=tmp_path)
    assert _commands(p, "build") == ["echo platform build for ci"]
    assert codes(diags) == []
    # Without the source: our own jobs, and a warning for each override.
    diags = Diagnostics()
    with pytest.raises(ConfigError):  # `who` is no parameter of our build
        build_ir(config, "config.yml", diags)
    p, diags = pipeline_of(config.replace(", who: ci", ""))
    assert _commands(p, "build") == ["echo our build"]
    assert codes(diags) == ["override-with", "override-with"]
    # The processed config shows a decided override as its outcome, an undecided one as is.
    processed = ".circleci/config.processed.yml"
    undecided = yaml.safe_load(compiled(config.replace(", who: ci", ""), "circleci")[processed])
    assert undecided["workflows"]["wf"]["jobs"][0] == {
        "build": {"override-with": "platform/build"}}
    decided = yaml.safe_load(compiled(config, "circleci", orb_dir=tmp_path)[processed])
    (concrete, entry), = decided["workflows"]["wf"]["jobs"][0].items()
    assert entry == {"name": "build"}  # no `override-with` left
    assert decided["jobs"][concrete]["steps"] == [{"run": "echo platform build for ci"}]


# ---- job groups ----------------------------------------------------------------------------

GROUPS = JOBS + """\
job-groups:
  ship:
    jobs:
      - j: {name: deploy}
      - j: {name: release, requires: [deploy]}
workflows:
  wf:
    jobs:
      - j: {name: build}
      - ship: {requires: [build], serial-group: prod, filters: {branches: {only: main}}}
      - ship: {name: canary, requires: [build]}
      - j: {name: notify, requires: [{ship: failed}, canary]}
"""


def test_job_groups_expand_into_the_workflow() -> None:
    p, diags = pipeline_of(GROUPS)
    wf = p.workflows[0]
    names = [n.name for n in wf.nodes]
    assert sorted(names) == ["build", "canary-deploy", "canary-release", "deploy", "notify",
                             "release"]
    assert wf.node("deploy").requires == ("build",)
    assert wf.node("release").requires == ("deploy",)
    assert wf.node("canary-release").requires == ("canary-deploy",)
    assert {wf.node(n).serial_group for n in ("deploy", "release")} == {"prod"}
    assert wf.node("canary-deploy").serial_group is None
    assert wf.node("release").filters == wf.node("deploy").filters != wf.node("build").filters
    notify = wf.node("notify")
    assert notify.requires == ("deploy", "release", "canary-deploy", "canary-release")
    assert notify.allowed("release") == {JobStatus.FAILED}
    assert notify.allowed("canary-release") == {JobStatus.SUCCESS}
    assert codes(diags) == ["approximated-serial-group"]  # the group is not one unit


@pytest.mark.parametrize("entry, message", [
    ("- ship: {context: [c]}", "takes only"),
    ("- ship\n      - ship", "used more than once"),
    ("- ship\n      - j: {requires: [release]}", "a job of job group 'ship'"),
])
def test_job_group_errors(entry: str, message: str) -> None:
    text = GROUPS.split("workflows:")[0] + "workflows:\n  wf:\n    jobs:\n      " + entry + "\n"
    diags = Diagnostics()
    with pytest.raises(ConfigError):
        build_ir(text, "config.yml", diags)
    assert [d.code for d in diags.sorted() if d.severity == "error"] == ["invalid-job-group"]
    assert message in diags.sorted()[0].message


def test_job_group_members_require_only_members() -> None:
    text = GROUPS.replace("requires: [deploy]}", "requires: [deploy, build]}")
    diags = Diagnostics()
    with pytest.raises(ConfigError):
        build_ir(text, "config.yml", diags)
    errors = [d for d in diags.sorted() if d.severity == "error"]
    assert {d.code for d in errors} == {"invalid-job-group"}
    assert "requires 'build', which is not a job of the group" in errors[0].message


def test_job_groups_in_a_2_0_config_are_ignored_with_a_warning() -> None:
    text = GROUPS.replace("version: 2.1", "version: 2").split("workflows:")[0]
    text += "workflows:\n  version: 2\n  wf:\n    jobs: [j]\n"
    _, diags = pipeline_of(text)
    assert "unsupported-feature" in codes(diags)
