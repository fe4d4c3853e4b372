"""Pipeline values and per-run identifiers on every target (semantics §5.8, §7).

Expected values are written by hand from the semantics document: `pipeline.number` is the
project's pipeline counter (not CIRCLE_BUILD_NUM, a job number), GitHub `github.run_number`,
GitLab `$CI_PIPELINE_IID`, make/shell a counter the run directory keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture
def gha(tmp_path: Path) -> Iterator[WorkflowRunner]:
    src = tmp_path / "src"
    src.mkdir()
    r = WorkflowRunner(tmp_path / "run", src)
    yield r
    r.close()


def github_files(text: str, tmp: Path) -> dict[str, Path]:
    out = {}
    for rel, content in compiled(text, "github").items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        out[Path(rel).stem] = p
    return out


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
def test_github_job_sees_the_run_number(gha: WorkflowRunner, tmp_path: Path) -> None:
    files = github_files(NUMBER, tmp_path)
    res = gha.run(files["wf"], "branch", "main")
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
