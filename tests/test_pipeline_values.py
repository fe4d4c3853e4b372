"""Pipeline values and per-run identifiers on every target (semantics §5.8, §7).

Expected values are written by hand from the semantics document: `pipeline.number` is the
project's pipeline counter (not CIRCLE_BUILD_NUM, a job number), GitHub `github.run_number`,
GitLab `$CI_PIPELINE_IID`, make/shell a counter the run directory keeps.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from cicompile import compile_config

from tests.gha_runner import WorkflowRunner
from tests.gitlab_helpers import make_repo, run_pipeline
from tests.local_helpers import project, run

e2e = pytest.mark.e2e


def compiled(text: str, target: str) -> dict[str, str]:
    result = compile_config(text, target, path="config.yml")
    assert result.ok, [d.render() for d in result.diagnostics]
    return result.files


def github_files(text: str, tmp: Path) -> dict[str, Path]:
    out = {}
    for rel, content in compiled(text, "github").items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        out[Path(rel).stem] = p
    return out


def gitlab_listed(repo: Path, variables: dict[str, str]) -> set[str]:
    """The jobs gitlab-ci-local's rules keep for a pipeline with these predefined variables."""
    from tests.gitlab_helpers import listed_jobs

    return set(listed_jobs(repo, variables=variables))


# ---- 1. pipeline.number ------------------------------------------------------------------

NUMBER = """\
version: 2.1
jobs:
  show:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo "pipeline-number=[<< pipeline.number >>] job-number-set=[${CIRCLE_BUILD_NUM:+y}]"
      - run: echo "gitlab-iid=[${CI_PIPELINE_IID:-none}]"
      - run: mkdir -p x && echo cached > x/f
      - save_cache: {key: 'n-<< pipeline.number >>', paths: [x]}
workflows:
  wf:
    jobs:
      - show:
          serial-group: group-<< pipeline.number >>
"""


def test_pipeline_number_is_not_the_job_number() -> None:
    for target in ("github", "gitlab", "make", "shell", "circleci"):
        for text in compiled(NUMBER, target).values():
            assert "{{ .BuildNum }}" not in text
            assert "pipeline-number=[${CIRCLE_BUILD_NUM}]" not in text
    processed = yaml.safe_load(compiled(NUMBER, "circleci")[".circleci/config.processed.yml"])
    steps = processed["jobs"]["show"]["steps"]
    assert steps[0]["run"].startswith("echo \"pipeline-number=[${CIRCLE_PIPELINE_NUMBER}]")
    assert steps[3]["save_cache"]["key"] == "n-{{ .Environment.CIRCLE_PIPELINE_NUMBER }}"


def test_github_pipeline_number_is_the_run_number_through_env() -> None:
    doc = yaml.safe_load(compiled(NUMBER, "github")[".github/workflows/wf.yml"])
    assert doc["env"]["CIRCLE_PIPELINE_NUMBER"] == "${{ github.run_number }}"
    job = doc["jobs"]["show"]
    # Never interpolated into a script: the command reads the variable.
    assert all("${{" not in s.get("run", "") or "run_number" not in s["run"]
               for s in job["steps"])
    assert job["concurrency"]["group"] == "group-${{ github.run_number }}"


@e2e
def test_github_job_sees_the_run_number(runner: WorkflowRunner, tmp_path: Path) -> None:
    files = github_files(NUMBER, tmp_path)
    res = runner.run(files["wf"], "branch", "main")
    assert res["show"].result == "success", res["show"].log
    assert "pipeline-number=[7] job-number-set=[y]" in res["show"].log  # run_number: 7


def test_gitlab_pipeline_number_is_the_pipeline_iid() -> None:
    doc = yaml.safe_load(compiled(NUMBER, "gitlab")[".gitlab-ci.yml"])
    driver = "\n".join(doc["default"]["before_script"])
    assert 'CIRCLE_PIPELINE_NUMBER="${CI_PIPELINE_IID:-}"' in driver
    assert doc["show"]["resource_group"] == "group-${CI_PIPELINE_IID}"


@e2e
def test_gitlab_job_sees_the_pipeline_iid(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", compiled(NUMBER, "gitlab")[".gitlab-ci.yml"])
    seen = []
    for _ in range(2):
        r = run_pipeline(repo)
        assert r.returncode == 0, r.output
        log = r.log("show")
        iid = next(line.split("gitlab-iid=[", 1)[1].split("]", 1)[0]
                   for line in log.splitlines() if "gitlab-iid=[" in line and "$" not in line)
        assert f"pipeline-number=[{iid}] job-number-set=[y]" in log, log
        seen.append(int(iid))
    assert seen[1] == seen[0] + 1  # gitlab-ci-local counts its pipelines, as GitLab does


@e2e
def test_local_pipeline_number_counts_runs(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, NUMBER, target)

    def number(env: dict[str, str] | None = None) -> str:
        r = run(target, src, env)
        assert r.returncode == 0, r.output
        line = next(x for x in r.stdout.splitlines() if "pipeline-number=[" in x and "$" not in x)
        assert "job-number-set=[y]" in line
        return line.split("pipeline-number=[", 1)[1].split("]", 1)[0]

    assert [number(), number()] == ["1", "2"]
    assert number({"CIRCLE_PIPELINE_NUMBER": "41"}) == "41"
    assert number() == "42"  # counting goes on from the number given
    # The cache key read the number too: one saved key per run.
    keys = sorted(p.read_text().splitlines()[-1]
                  for p in (src / ".cicompile-cache").glob("*.key"))
    assert keys == ["n-1", "n-2", "n-41", "n-42"], keys
    bad = run(target, src, {"CIRCLE_PIPELINE_NUMBER": "x1"})
    assert bad.returncode != 0 and "CIRCLE_PIPELINE_NUMBER must be a number" in bad.output


# ---- 2. conditions on what started the pipeline ------------------------------------------

STARTERS = """\
version: 2.1
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo build}]
  report:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo report}]
  slow:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo slow}]
  deploy:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo deploy}]
  by-hand:
    docker: [{image: cimg/base:stable}]
    steps: [{run: echo by-hand}]
workflows:
  ci:
    unless:
      equal: [schedule, << pipeline.trigger.type >>]
    jobs: [build]
  weekly:
    when:
      equal: [weekly, << pipeline.schedule.name >>]
    jobs: [report]
  nightlies:
    when: pipeline.schedule.name starts-with "night" and pipeline.git.branch == "main"
    jobs: [slow]
  pushes:
    when: pipeline.event.name == "push" and pipeline.git.branch == "main"
    jobs: [deploy]
  api:
    when:
      equal: [api, << pipeline.trigger.type >>]
    jobs: [by-hand]
"""
SCHEDULES = (("weekly", "0 3 * * 1"), ("nightly-db", "0 2 * * *"))
# (trigger, schedule name) events, on branch main.
STARTER_EVENTS = [("push", ""), ("schedule", "weekly"), ("schedule", "nightly-db")]


def reference_jobs(trigger: str, schedule: str) -> dict[str, set[str]]:
    from tests.reference import existing_jobs

    return existing_jobs(yaml.safe_load(STARTERS), "main", "", trigger, schedule)


def test_reference_expectations_are_what_the_semantics_say() -> None:
    """Written by hand (§5.7–5.8): the reference evaluator agrees."""
    assert reference_jobs("push", "") == {
        "ci": {"build"}, "weekly": set(), "nightlies": set(), "pushes": {"deploy"},
        "api": set()}
    assert reference_jobs("schedule", "weekly") == {
        "ci": set(), "weekly": {"report"}, "nightlies": set(), "pushes": set(), "api": set()}
    assert reference_jobs("schedule", "nightly-db")["nightlies"] == {"slow"}


def test_starter_conditions_are_lowered_not_warned() -> None:
    for target in ("github", "gitlab", "make", "shell"):
        result = compile_config(STARTERS, target, path="config.yml", schedules=SCHEDULES)
        assert result.ok
        codes = {d.code for d in result.diagnostics}
        assert "runtime-condition" not in codes and "schedule-name" not in codes, target
    # Without the schedules GitHub cannot name a scheduled run, and says so.
    bare = compile_config(STARTERS, "github", path="config.yml")
    assert [d.code for d in bare.diagnostics].count("schedule-name") == 2


@pytest.mark.parametrize(("condition", "why"), [
    ("equal: [github_app, << pipeline.trigger.type >>]", "pipeline.trigger.type"),
    ("equal: [pull_request, << pipeline.event.name >>]", "pipeline.event.name"),
    ("equal: [<< pipeline.schedule.name >>, << pipeline.git.branch >>]", "schedule.name"),
])
def test_what_no_target_can_tell_stays_warned(condition: str, why: str) -> None:
    text = STARTERS.replace("equal: [api, << pipeline.trigger.type >>]", condition)
    result = compile_config(text, "gitlab", path="config.yml")
    warned = [d for d in result.diagnostics if d.code == "runtime-condition"]
    assert len(warned) == 1 and why in warned[0].message and warned[0].span is not None


@e2e
@pytest.mark.parametrize(("trigger", "schedule"), STARTER_EVENTS)
def test_github_starter_conditions(runner: WorkflowRunner, tmp_path: Path, trigger: str,
                                   schedule: str) -> None:
    result = compile_config(STARTERS, "github", path="config.yml", schedules=SCHEDULES)
    files = {}
    for rel, content in result.files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        files[Path(rel).stem] = p
    cron = dict(SCHEDULES).get(schedule, "")
    seen = {}
    for wf, path in files.items():
        res = runner.run(path, "branch", "main", event=trigger, cron=cron)
        seen[wf] = {j for j, r in res.items() if r.result == "success" and j != "circleci-gate"}
    assert seen == reference_jobs(trigger, schedule)


@e2e
@pytest.mark.parametrize(("trigger", "schedule"), STARTER_EVENTS)
def test_local_starter_conditions(target: str, tmp_path: Path, trigger: str,
                                  schedule: str) -> None:
    src = project(tmp_path, STARTERS, target)
    env = {"CICOMPILE_DRY_RUN": "1", "CICOMPILE_TRIGGER": trigger}
    if schedule:
        env["CICOMPILE_SCHEDULE_NAME"] = schedule
    r = run(target, src, env)
    assert r.returncode == 0, r.output
    seen = {wf: {j for j, s in r.statuses(wf).items() if s == "success"}
            for wf in reference_jobs(trigger, schedule)}
    assert seen == reference_jobs(trigger, schedule)


@e2e
def test_local_schedule_name_needs_a_scheduled_run(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, STARTERS, target)
    r = run(target, src, {"CICOMPILE_SCHEDULE_NAME": "weekly"})
    assert r.returncode != 0 and "set CICOMPILE_TRIGGER=schedule too" in r.output


@e2e
@pytest.mark.parametrize(("trigger", "schedule"), STARTER_EVENTS)
def test_gitlab_starter_conditions(tmp_path: Path, trigger: str, schedule: str) -> None:
    repo = make_repo(tmp_path / "repo", compiled(STARTERS, "gitlab")[".gitlab-ci.yml"])
    variables = {"CI_PIPELINE_SOURCE": trigger}
    if schedule:
        variables["CI_PIPELINE_SCHEDULE_DESCRIPTION"] = schedule
    listed = gitlab_listed(repo, variables)
    want = reference_jobs(trigger, schedule)
    assert listed == {j for jobs in want.values() for j in jobs}


# ---- 3. CIRCLE_WORKFLOW_ID: one per workflow, the same in all its jobs -----------------------

WORKFLOW_IDS = """\
version: 2.1
jobs:
  first:
    docker: [{image: cimg/base:stable}]
    steps: [{run: 'echo "wfid=[$CIRCLE_WORKFLOW_ID] job=[$CIRCLE_JOB]"'}]
  second:
    docker: [{image: cimg/base:stable}]
    steps: [{run: 'echo "wfid=[$CIRCLE_WORKFLOW_ID] job=[$CIRCLE_JOB]"'}]
workflows:
  one:
    jobs:
      - first: {name: one-a}
      - second: {name: one-b, requires: [one-a]}
  two:
    jobs:
      - first: {name: two-a}
      - second: {name: two-b, requires: [two-a]}
"""
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def workflow_ids(output: str) -> dict[str, str]:
    """{job: the CIRCLE_WORKFLOW_ID it printed}."""
    return {m.group(2): m.group(1)
            for m in re.finditer(r"wfid=\[([^]$]*)\] job=\[([\w-]+)\]", output)}


def check_workflow_ids(ids: dict[str, str]) -> None:
    assert set(ids) == {"one-a", "one-b", "two-a", "two-b"}, ids
    assert ids["one-a"] == ids["one-b"] and ids["two-a"] == ids["two-b"], ids
    assert ids["one-a"] != ids["two-a"], ids
    assert all(UUID.fullmatch(v) for v in ids.values()), ids


@e2e
def test_gitlab_workflow_ids(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", compiled(WORKFLOW_IDS, "gitlab")[".gitlab-ci.yml"])
    runs = []
    for _ in range(2):
        r = run_pipeline(repo)
        assert r.returncode == 0, r.output
        ids = workflow_ids("".join(r.log(j) for j in ("one-a", "one-b", "two-a", "two-b")))
        check_workflow_ids(ids)
        runs.append(ids)
    assert runs[0]["one-a"] != runs[1]["one-a"]  # another pipeline, other workflows


@e2e
def test_local_workflow_ids(target: str, tmp_path: Path) -> None:
    src = project(tmp_path, WORKFLOW_IDS, target)
    runs = []
    for _ in range(2):
        r = run(target, src)
        assert r.returncode == 0, r.output
        ids = workflow_ids(r.stdout)
        check_workflow_ids(ids)
        runs.append(ids)
    assert runs[0]["one-a"] != runs[1]["one-a"]


@e2e
def test_github_workflow_id_is_the_run_and_its_attempt(runner: WorkflowRunner,
                                                        tmp_path: Path) -> None:
    files = github_files(WORKFLOW_IDS, tmp_path)
    assert yaml.safe_load(files["one"].read_text())["env"]["CIRCLE_WORKFLOW_ID"] == (
        "${{ github.run_id }}-${{ github.run_attempt }}")
    res = runner.run(files["one"], "branch", "main")
    ids = workflow_ids(res["one-a"].log + res["one-b"].log)
    assert ids == {"one-a": "4242-1", "one-b": "4242-1"}  # the emulator's run 4242, attempt 1


# ---- 4. make/shell: an absolute attach_workspace `at:` starts clean in every run -----------

ABSOLUTE_ATTACH = """\
version: 2.1
jobs:
  make-layer:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: mkdir ws && echo x > "ws/from-run-$CIRCLE_PIPELINE_NUMBER"
      - persist_to_workspace: {root: ws, paths: [.]}
  use-fresh:
    docker: [{image: cimg/base:stable}]
    steps:
      - attach_workspace: {at: '@OUT@/fresh/ws'}
      - run: echo "fresh=[$(ls -A '@OUT@/fresh/ws' | tr '\\n' ' ')]"
      - run: touch '@OUT@/fresh/ws/written-by-the-job'
  use-existing:
    docker: [{image: cimg/base:stable}]
    steps:
      - attach_workspace: {at: '@OUT@/existing'}
      - run: echo "existing=[$(ls -A '@OUT@/existing' | tr '\\n' ' ')]"
workflows:
  wf:
    jobs:
      - make-layer
      - use-fresh: {requires: [make-layer]}
      - use-existing: {requires: [make-layer]}
"""


@e2e
def test_local_absolute_attach_starts_clean_each_run(target: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "existing").mkdir(parents=True)
    (out / "existing" / "mine.txt").write_text("the user's\n")
    src = project(tmp_path, ABSOLUTE_ATTACH.replace("@OUT@", str(out)), target)

    def listing(r_stdout: str, what: str) -> str:
        return next(x.split(f"{what}=[", 1)[1].split("]", 1)[0].strip()
                    for x in r_stdout.splitlines() if f"{what}=[" in x and "$" not in x)

    for number in ("1", "2"):
        r = run(target, src)
        assert r.returncode == 0, r.output
        assert listing(r.stdout, "fresh") == f"from-run-{number}", r.stdout
        assert listing(r.stdout, "existing") == f"from-run-{number} mine.txt", r.stdout
    if target == "shell":
        return  # ci.sh has no `clean`: its next run cleans up
    # `make clean` removes what the last run attached, and nothing else.
    clean = run(target, src, args=("clean",))
    assert clean.returncode == 0, clean.output
    assert not (out / "fresh").exists()
    assert sorted(p.name for p in (out / "existing").iterdir()) == ["mine.txt"]


# ---- 5. a scheduled run of a config without `triggers` --------------------------------------
# CircleCI can then only schedule it with schedule triggers (project settings), whose scheduled
# pipeline runs every workflow its conditions allow (semantics §5.7). Every target's scheduled
# run (GitHub with `--schedule`, a GitLab pipeline schedule, CICOMPILE_TRIGGER=schedule) means
# that, checked on every golden config without `triggers` against the reference evaluator.

SCHEDULED_RUN = ("schedule", "branch", "main")
DECLARED = (("nightly", "0 2 * * *"),)


def untriggered_goldens() -> list[Path]:
    from cicompile.ir import Pipeline

    from tests.corpus_tools import compiled as corpus_compiled
    from tests.corpus_tools import golden_inputs

    out = []
    for p in golden_inputs():
        pipeline = corpus_compiled(p, "github").pipeline
        assert isinstance(pipeline, Pipeline)
        if not any(wf.schedules for wf in pipeline.workflows):
            out.append(p)
    return out


def scheduled_reference(path: Path) -> tuple[dict[str, set[str]], set[str]]:
    """(what the scheduled pipeline runs, the workflows not compared: runtime-condition)."""
    from tests.corpus_tools import compiled as corpus_compiled
    from tests.corpus_tools import expectation
    from tests.reference import existing_jobs

    exp = expectation(path, corpus_compiled(path, "github"))
    return existing_jobs(exp.config, "main", "", "schedule"), set(exp.excluded)


def agree(path: Path, got: dict[str, set[str]]) -> list[str]:
    want, excluded = scheduled_reference(path)
    return [f"{path.parent.name} {wf}: want {sorted(want.get(wf, set()))}, got"
            f" {sorted(got.get(wf, set()))}" for wf in sorted(set(want) | set(got))
            if wf not in excluded and want.get(wf, set()) != got.get(wf, set())]


def test_a_scheduled_run_without_triggers_runs_every_workflow() -> None:
    """By hand: golden/seed-sequential has one unfiltered workflow; it runs."""
    path = next(p for p in untriggered_goldens() if p.parent.name == "seed-sequential")
    want, _ = scheduled_reference(path)
    assert want == {"build-test-and-deploy": {"build", "test1", "test2", "deploy"}}
    runtime_when = next(p for p in untriggered_goldens() if p.parent.name == "v21-runtime-when")
    want, _ = scheduled_reference(runtime_when)
    assert want["ci"] == set() and want["nightly"] == {"nightly"}  # their `when` decides
    assert want["release-branches"] == set()  # on main: its branch condition
    assert len(untriggered_goldens()) >= 15


def local_scheduled_run(path: Path, target: str, workdir: Path) -> dict[str, set[str]]:
    """{workflow: its jobs that are part of the run} of a dry scheduled run on main: every
    status but `skipped` (a `blocked` job exists, its requirements ended otherwise)."""
    from tests.corpus_tools import compiled as corpus_compiled
    from tests.corpus_tools import local_view

    return local_view(corpus_compiled(path, target), target, [SCHEDULED_RUN],
                      workdir).exists[SCHEDULED_RUN]


@e2e
def test_local_scheduled_run_without_triggers(target: str, tmp_path: Path) -> None:
    problems = []
    for i, path in enumerate(untriggered_goldens()):
        problems += agree(path, local_scheduled_run(path, target, tmp_path / f"run{i}"))
    assert not problems, problems


@e2e
def test_gitlab_scheduled_run_without_triggers(tmp_path: Path) -> None:
    from tests.corpus_tools import compiled as corpus_compiled
    from tests.corpus_tools import gitlab_views

    paths = untriggered_goldens()
    views = gitlab_views([(corpus_compiled(p, "gitlab"), [SCHEDULED_RUN]) for p in paths],
                         tmp_path / "repo")
    problems = [m for p, v in zip(paths, views, strict=True)
                for m in agree(p, v.exists[SCHEDULED_RUN])]
    assert not problems, problems


@e2e
def test_github_scheduled_run_without_triggers() -> None:
    from tests.corpus_tools import config_id, github_view

    problems = []
    for path in untriggered_goldens():
        result = compile_config(path.read_text(), "github", path=config_id(path),
                                schedules=DECLARED)
        assert result.ok
        for text in result.files.values():
            assert yaml.safe_load(text)[True]["schedule"] == [{"cron": "0 2 * * *"}]
        problems += agree(path, github_view(result, [SCHEDULED_RUN]).exists[SCHEDULED_RUN])
        # Without declared schedules GitHub has no scheduled run of these workflows.
        bare = compile_config(path.read_text(), "github", path=config_id(path))
        assert all("schedule" not in yaml.safe_load(t)[True] for t in bare.files.values())
    assert not problems, problems


# ---- --schedule on the command line ------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--schedule", "nightly"], "is not NAME=CRON"),
    (["--schedule", "nightly=0 2 * *"], "five cron fields"),
    (["--schedule", "a=0 2 * * *", "--schedule", "a=0 3 * * *"], "given twice"),
    (["--schedule", "a=0 2 * * *", "--schedule", "b=0  2 * * *"], "could not tell them apart"),
])
def test_schedule_option_is_checked(args: list[str], message: str, tmp_path: Path) -> None:
    from cicompile.cli import main
    from click.testing import CliRunner

    config = tmp_path / "config.yml"
    config.write_text(STARTERS)
    r = CliRunner().invoke(main, ["--target", "github", *args, str(config)])
    assert r.exit_code == 2 and message in r.output, r.output


def test_schedule_option_reaches_the_workflows(tmp_path: Path) -> None:
    from cicompile.cli import main
    from click.testing import CliRunner

    config = tmp_path / "config.yml"
    config.write_text(STARTERS)
    r = CliRunner().invoke(main, ["--target", "github", "-o", str(tmp_path / "out"),
                                  "--schedule", "weekly= 0  3 * * 1", str(config)])
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load((tmp_path / "out/.github/workflows/weekly.yml").read_text())
    assert doc[True]["schedule"] == [{"cron": "0 3 * * 1"}]
    assert "'0 3 * * 1') CICOMPILE_SCHEDULE_NAME=weekly ;;" in (
        doc["jobs"]["circleci-gate"]["steps"][0]["run"])
