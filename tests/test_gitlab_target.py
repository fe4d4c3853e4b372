"""The GitLab CI target: output shape, and end-to-end runs under gitlab-ci-local.

The e2e tests run the generated `.gitlab-ci.yml` with gitlab-ci-local (shell executor, one
isolated build directory per job) and check CircleCI semantics: workspaces across jobs,
approvals, step `when`/environment/working-directory behaviour, and which jobs the rules keep
for branch and tag pipelines (expectations written by hand from semantics §5.3–5.4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cicompile import compile_config
from cicompile.diagnostics import Diagnostic
from cicompile.targets.gitlab import shell_dir

from tests.gitlab_helpers import (
    GclRun,
    listed_jobs,
    make_repo,
    run_pipeline,
    validate_needs,
)
from tests.parallel_cases import ONE_NODE_FAILS, PARALLEL, check_shares
from tests.tools import require_tool, run


def compile_gitlab(text: str) -> tuple[str, list[Diagnostic]]:
    result = compile_config(text, "gitlab", path="config.yml")
    assert result.ok, [d.render() for d in result.diagnostics]
    assert list(result.files) == [".gitlab-ci.yml"]
    return result.files[".gitlab-ci.yml"], result.diagnostics


def load(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(compile_gitlab(text)[0])
    assert isinstance(doc, dict)
    return doc


def codes(diags: list[Diagnostic]) -> set[str]:
    return {d.code for d in diags}


# ---- configs (written for these tests) ---------------------------------------------------

WORKSPACE = """\
version: 2.1
jobs:
  flow:
    docker:
      - image: buildpack-deps:bookworm
    working_directory: ~/project/seed
    steps:
      - run: mkdir -p workspace
      - run: echo "Hello, world!" > workspace/echo-output
      - run: |
          printf '#!/bin/sh\\necho "executable $((40 + 2))"\\n' > workspace/run.sh
          chmod +x workspace/run.sh
      - run: echo not persisted > private.txt
      - persist_to_workspace:
          root: workspace
          paths:
            - echo-output
            - run.sh
  downstream:
    docker:
      - image: buildpack-deps:bookworm
    working_directory: ~/project/seed
    steps:
      - attach_workspace:
          at: attached
      - run: |
          if [[ $(cat attached/echo-output) == "Hello, world!" ]]; then
            echo "It worked: $((6 * 7))"
          else
            echo "Nope!"; exit 1
          fi
      - run: test -x attached/run.sh && attached/run.sh
      - run: test ! -e private.txt && test ! -e workspace
workflows:
  btd:
    jobs:
      - flow
      - downstream:
          requires:
            - flow
"""

LAYERED = """\
version: 2.1
jobs:
  a:
    machine: true
    steps:
      - run: |
          mkdir -p out hidden
          echo A > out/a.txt
          echo dot > hidden/.dotfile
          echo secret > private-a.txt
      - persist_to_workspace:
          root: out
          paths: [a.txt]
      - persist_to_workspace:
          root: ~/project
          paths: [hidden]
  b:
    machine: true
    steps:
      - run: mkdir -p out && echo B > out/b.txt && echo B2 > out/b2.txt
      - persist_to_workspace:
          root: ~/project/out
          paths: ["b*.txt"]
  c:
    machine: true
    steps:
      - attach_workspace:
          at: ~/project/ws
      - run: |
          test "$(cat ws/a.txt)" = A
          test "$(cat ws/hidden/.dotfile)" = dot
          test ! -e ws/b.txt
          test ! -e private-a.txt && test ! -e out
          # the downloaded tarballs are there, but out of the scripts' `git status`
          test -f "$CI_PROJECT_DIR/.cicompile/workspace/a-0.tar"
          if git status --porcelain | grep cicompile; then exit 1; fi
          echo "c-ok-$((1 + 1))"
  d:
    machine: true
    steps:
      - attach_workspace:
          at: ws
      - run: |
          test "$(cat ws/a.txt)" = A
          test "$(cat ws/b.txt)" = B && test "$(cat ws/b2.txt)" = B2
          test ! -e private-a.txt && test ! -e out
          mkdir -p more && echo A-from-d > more/a.txt && echo D > more/d.txt
          echo "d-ok-$((2 + 2))"
      - persist_to_workspace:
          root: more
          paths: [.]
  e:
    machine: true
    working_directory: ~/project/e-dir
    steps:
      - attach_workspace:
          at: got
      - run: |
          test "$(cat got/a.txt)" = A-from-d
          test "$(cat got/b.txt)" = B
          test "$(cat got/d.txt)" = D
          test "$(cat got/hidden/.dotfile)" = dot
          test ! -e ../ws && test ! -e ../more
          echo "e-ok-$((3 + 3))"
workflows:
  layers:
    jobs:
      - a
      - b
      - c:
          requires: [a]
      - d:
          requires: [a, b]
      - e:
          requires: [d]
"""

APPROVAL = """\
version: 2.1
jobs:
  build:
    machine: true
    steps:
      - run: echo "built-$((1 + 1))"
  deploy:
    machine: true
    steps:
      - run: echo "deployed-$((2 + 3))"
workflows:
  release:
    jobs:
      - build
      - hold:
          type: approval
          requires: [build]
      - deploy:
          requires: [hold]
  everywhere:
    jobs:
      - build:
          name: build2
          filters:
            tags:
              only: /.*/
      - hold2:
          type: approval
          requires: [build2]
          filters:
            tags:
              only: /.*/
      - deploy:
          name: deploy2
          requires: [hold2]
          filters:
            tags:
              only: /.*/
"""

FILTERS = r"""
version: 2.1
jobs:
  noop:
    machine: true
    steps:
      - run: echo "branch=[$CIRCLE_BRANCH] tag=[${CIRCLE_TAG-unset}] job=[$CIRCLE_JOB]"
workflows:
  filters:
    jobs:
      - noop:
          name: plain
      - noop:
          name: main-only
          filters:
            branches:
              only: main
      - noop:
          name: no-feature
          filters:
            branches:
              ignore: /feature\/.*/
      - noop:
          name: release-re
          filters:
            branches:
              only: [/release\/\d+\.\d+/, main]
      - noop:
          name: tag-v
          filters:
            branches:
              ignore: /.*/
            tags:
              only: /^v\d+\.\d+\.\d+$/
      - noop:
          name: all-tags
          filters:
            tags:
              only: /.*/
      - noop:
          name: tag-ignore-nightly
          filters:
            branches:
              only: /release\/.*/
            tags:
              ignore: nightly
      - noop:
          name: after-tag-v
          requires: [tag-v]
          filters:
            tags:
              only: /.*/
      - noop:
          name: after-plain-tagged
          requires: [plain]
          filters:
            tags:
              only: /.*/
      - noop:
          name: after-either
          requires: [main-only, no-feature]
      - noop:
          name: after-after
          requires: [after-either]
          filters:
            branches:
              ignore: main
"""

# Worked out by hand from semantics §5.4 (branch filters on branch pipelines; no tag
# pipelines without a `tags` filter; Java regexes match the whole name) and §5.3 (a job with
# requirements exists only if at least one of them exists).
FILTER_EXPECTED: dict[tuple[str, str | None], set[str]] = {
    ("main", None): {"plain", "main-only", "no-feature", "release-re", "all-tags",
                     "after-plain-tagged", "after-either"},
    ("feature/x", None): {"plain", "all-tags", "after-plain-tagged"},
    ("release/1.2", None): {"plain", "no-feature", "release-re", "all-tags",
                            "tag-ignore-nightly", "after-plain-tagged", "after-either",
                            "after-after"},
    ("main", "v1.2.3"): {"tag-v", "all-tags", "tag-ignore-nightly", "after-tag-v"},
    ("main", "nightly"): {"all-tags"},
}

STEPS = r"""
version: 2.1
jobs:
  steps:
    machine: true
    environment:
      LITERAL: 'a$HOME b'
      LEVEL: job
    steps:
      - run: echo "literal=[$LITERAL]"
      - run:
          name: step environment wins
          environment:
            LEVEL: step
          command: echo "level=[$LEVEL]"
      - run: echo "level-after=[$LEVEL]"
      - run: |
          echo "branch=[$CIRCLE_BRANCH] tag=[${CIRCLE_TAG-unset}] job=[$CIRCLE_JOB]" \
            "ci=[$CIRCLECI]"
      - run: |
          same=$([ "$PWD" = "$CI_PROJECT_DIR" ] && echo yes)
          echo "wd=[$CIRCLE_WORKING_DIRECTORY] pwd=[$PWD] same=[$same]"
      - run: echo 'export FROM_BASH_ENV=kept' >> "$BASH_ENV"
      - run: echo "bash-env=[$FROM_BASH_ENV]"
      - run: NOT_EXPORTED=1; export ALSO_NOT=1
      - run: echo "fresh-shell=[${NOT_EXPORTED-}${ALSO_NOT-}]"
      - run:
          working_directory: sub/dir
          command: echo "sub=[${PWD#"$CI_PROJECT_DIR"/}]" | tee note.txt
      - run: if read -r line; then echo "stdin=[$line]"; else echo "stdin=[empty]"; fi
      - run:
          background: true
          command: echo "background-$((4 + 4))"; sleep 300
      - run: echo "pipefail"; false | true; echo "unreachable-$((1 + 1))"
      - run: echo "skipped-$((2 + 2))"
      - run:
          when: on_fail
          command: echo "on-fail-$((3 + 3))"
      - run:
          when: always
          command: echo "always-$((5 + 5))"
      - store_artifacts:
          path: sub
          destination: the-sub
  checkout-elsewhere:
    machine: true
    steps:
      - checkout:
          path: src
      - run: |
          test "$(cat src/input.txt)" = input
          test ! -e src/src
          echo "checkout-ok-$((7 + 7))"
      - run:
          shell: /bin/sh -eu
          command: echo "sh-shell-$((8 + 8))"
workflows:
  main:
    jobs:
      - steps
      - checkout-elsewhere
"""

ALL_CONFIGS = {"workspace": WORKSPACE, "layered": LAYERED, "approval": APPROVAL,
               "filters": FILTERS, "steps": STEPS}


# ---- output shape (no external tools) ----------------------------------------------------


def test_every_job_has_needs_and_roots_have_empty_needs() -> None:
    for text in ALL_CONFIGS.values():
        doc = load(text)
        for name, job in doc.items():
            if name == "default":
                continue
            assert "needs" in job, name
    doc = load(WORKSPACE)
    assert doc["flow"]["needs"] == []
    assert doc["downstream"]["needs"] == [{"job": "flow", "artifacts": True, "optional": False}]


def test_header_names_the_source() -> None:
    text, _ = compile_gitlab(WORKSPACE)
    assert text.startswith("# Generated by cicompile from config.yml.")


def test_job_names_prefix_duplicates_and_reserved_words() -> None:
    config = """\
version: 2.1
jobs:
  image:
    machine: true
    steps: [{run: echo}]
  build:
    machine: true
    steps: [{run: echo}]
workflows:
  one:
    jobs: [image, build]
  two:
    jobs: [build]
"""
    doc = load(config)
    assert [k for k in doc if k != "default"] == ["one:image", "one:build", "two:build"]


def test_layer_ancestors_are_needed_with_artifacts() -> None:
    doc = load(LAYERED)
    assert doc["e"]["needs"] == [
        {"job": "d", "artifacts": True, "optional": False},
        {"job": "a", "artifacts": True, "optional": False},
        {"job": "b", "artifacts": True, "optional": False},
    ]
    assert doc["a"]["artifacts"] == {
        "paths": [".cicompile/workspace/a-0.tar", ".cicompile/workspace/a-1.tar"],
        "when": "on_success",
    }
    assert "artifacts" not in doc["c"]


def test_rules_shapes_and_optional_needs() -> None:
    doc = load(FILTERS)
    assert "rules" not in doc["all-tags"]  # every branch and every tag: no rule needed
    assert doc["plain"]["rules"] == [{"if": "$CI_COMMIT_BRANCH"}]
    # after-either exists when either requirement does, so each of them may be absent.
    assert all(n["optional"] for n in doc["after-either"]["needs"])
    assert all(not n["artifacts"] for n in doc["after-either"]["needs"])
    # after-tag-v exists only when tag-v does.
    assert doc["after-tag-v"]["needs"] == [{"job": "tag-v", "artifacts": False,
                                            "optional": False}]
    never = load("""\
version: 2.1
jobs:
  j:
    machine: true
    steps: [{run: echo}]
workflows:
  w:
    jobs:
      - j:
          filters:
            branches:
              ignore: /.*/
""")
    assert never["j"]["rules"] == [{"when": "never"}]


def test_approval_jobs_are_manual_and_blocking() -> None:
    doc = load(APPROVAL)
    hold = doc["hold"]
    assert hold["rules"] == [{"if": "$CI_COMMIT_BRANCH", "when": "manual",
                              "allow_failure": False}]
    assert "when" not in hold
    hold2 = doc["hold2"]  # exists on every branch and tag: no rules, job-level manual
    assert "rules" not in hold2
    assert hold2["when"] == "manual" and hold2["allow_failure"] is False
    assert doc["deploy"]["needs"] == [{"job": "hold", "artifacts": False, "optional": False}]


def test_docker_images_services_and_git_strategy() -> None:
    config = """\
version: 2.1
jobs:
  j:
    docker:
      - image: cimg/python:3.12
        user: circleci
        environment:
          IMG: primary
      - image: postgres:16
        environment:
          POSTGRES_PASSWORD: pa$$word
      - image: redis:7
        name: cache
    environment:
      JOB: 'x$y'
    steps:
      - checkout
      - run: echo
  k:
    docker:
      - image: alpine
        entrypoint: [/bin/sh, -c]
    steps: [{run: echo}]
workflows:
  w:
    jobs: [j, k]
"""
    text, diags = compile_gitlab(config)
    doc = yaml.safe_load(text)
    assert doc["j"]["image"] == {"name": "cimg/python:3.12", "entrypoint": [""],
                                 "docker": {"user": "circleci"}}
    assert doc["j"]["services"] == [
        {"name": "postgres:16", "alias": "postgres",
         "variables": {"POSTGRES_PASSWORD": "pa$$$$word"}},
        {"name": "redis:7", "alias": "cache"},
    ]
    assert "variables" not in doc["j"]  # it checks out: GitLab's clone is wanted
    assert doc["k"]["variables"] == {"GIT_STRATEGY": "none"}
    # CircleCI's entrypoint is started by the script, never GitLab's shell wrapper; a bare
    # shell entrypoint has nothing to start.
    assert doc["k"]["image"]["entrypoint"] == [""]
    assert not any("nohup" in s for s in doc["k"]["script"])
    env_entry = doc["j"]["script"][0]
    assert "export IMG=primary" in env_entry
    assert "export JOB='x$y'" in env_entry
    assert "service-hostname" in codes(diags)


def test_unsupported_executor_steps_and_artifacts() -> None:
    config = """\
version: 2.1
jobs:
  mac:
    macos:
      xcode: 15.0.0
    steps:
      - restore_cache:
          keys: [v1-deps]
      - setup_remote_docker
      - frobnicate
      - store_test_results:
          path: reports/junit.xml
      - store_test_results:
          path: more-reports
      - store_artifacts:
          path: /tmp/logs
      - save_cache:
          key: v1-deps
          paths: [node_modules]
workflows:
  w:
    jobs: [mac]
"""
    text, diags = compile_gitlab(config)
    doc = yaml.safe_load(text)
    job = doc["mac"]
    # macOS runs on GitLab's hosted macOS runners, with the image of the nearest Xcode.
    assert job["image"] == "macos-14-xcode-15"
    assert job["tags"] == ["saas-macos-medium-m1"]
    assert "unsupported-executor" not in codes(diags)
    assert "approximated-cache" in codes(diags)
    assert job["cache"] == [{"key": "cicompile-circleci-caches", "paths": [".cicompile/cache/"],
                             "policy": "pull-push", "when": "always"}]
    assert job["artifacts"] == {
        "paths": [".cicompile/test-results/mac/", ".cicompile/artifacts/mac/"],
        "reports": {"junit": [".cicompile/test-results/mac/0/junit.xml"]},
        "when": "always",
    }
    [placeholder] = [s for s in job["script"] if "frobnicate" in s]
    assert "exit 1" in placeholder
    # setup_remote_docker is translated (tests/test_step_options.py): it checks the engine.
    [remote_docker] = [s for s in job["script"] if "Setup a remote Docker engine" in s]
    assert "docker version" in remote_docker
    stores = [s for s in job["script"] if "Uploading" in s]
    assert len(stores) == 3 and all("--when always" in s for s in stores)


@pytest.mark.parametrize(("path", "word"), [
    ("~/project", '"$CI_PROJECT_DIR"'),
    ("~/project/", '"$CI_PROJECT_DIR"'),
    ("~/project/a b", '"$CI_PROJECT_DIR"/\'a b\''),
    ("~/project/../cache", '"$HOME"/cache'),
    ("~", '"$HOME"'),
    ("~/go/src", '"$HOME"/go/src'),
    ("/tmp/x y", "'/tmp/x y'"),
])
def test_circleci_directories_on_gitlab(path: str, word: str) -> None:
    assert shell_dir(path) == word


def test_needs_limit_warning() -> None:
    names = [f"j{i}" for i in range(51)]
    config = (
        "version: 2.1\njobs:\n  j:\n    machine: true\n    steps: [{run: echo}]\n"
        "workflows:\n  w:\n    jobs:\n"
        + "".join(f"      - j: {{name: {n}}}\n" for n in names)
        + f"      - j: {{name: fan-in, requires: [{', '.join(names)}]}}\n"
    )
    text, diags = compile_gitlab(config)
    assert len(yaml.safe_load(text)["fan-in"]["needs"]) == 51
    assert "gitlab-needs-limit" in codes(diags)


def test_output_is_deterministic() -> None:
    for text in ALL_CONFIGS.values():
        assert compile_gitlab(text)[0] == compile_gitlab(text)[0]


def test_schema_validation(tmp_path: Path) -> None:
    cj = require_tool("check-jsonschema")
    files = []
    for name, text in ALL_CONFIGS.items():
        f = tmp_path / f"{name}.gitlab-ci.yml"
        f.write_text(compile_gitlab(text)[0])
        files.append(str(f))
    r = run([cj, "--builtin-schema", "vendor.gitlab-ci", *files])
    assert r.returncode == 0, r.stdout + r.stderr


# Only `cached` has cache steps; `split` and `halt` need the circleci shim.
SHARED_TEXT = """\
version: 2.1
jobs:
  cached:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo data > f
      - save_cache: {key: v1-x, paths: [f]}
  plain:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: echo plain
  split:
    docker: [{image: cimg/base:stable}]
    parallelism: 2
    steps:
      - run: echo a b | circleci tests split
  halt:
    docker: [{image: cimg/base:stable}]
    steps:
      - run: circleci-agent step halt
workflows:
  main:
    jobs: [cached, plain, split, halt]
"""


def test_cache_library_and_shim_are_written_once_for_the_jobs_that_use_them() -> None:
    text = compile_gitlab(SHARED_TEXT)[0]
    doc = yaml.safe_load(text)
    assert text.count("cc_cache_save() (") == 1 and text.count("cicompile_step() {") == 1
    assert text.count("cc_shim_split() {") == 1
    driver = doc["default"]["before_script"]
    assert len(driver) == 1 and "cc_cache_save" not in driver[0]
    # The hidden job's before_script replaces the default one, so it repeats the driver.
    template = doc[".cicompile-cache"]["before_script"]
    assert template[0] == driver[0] and "cc_cache_save() (" in template[1]
    assert doc["cached"]["extends"] == ".cicompile-cache"
    assert all("extends" not in doc[j] for j in ("plain", "split", "halt"))
    shim = [entry for j in ("split", "halt") for entry in doc[j]["script"]
            if "cc_shim_split() {" in entry]
    assert len(shim) == 2 and shim[0] == shim[1]
    assert not any("cc_shim" in entry for j in ("cached", "plain") for entry in doc[j]["script"])


def test_gitlab_ci_local_resolves_the_anchors_and_the_cache_template(tmp_path: Path) -> None:
    text = compile_gitlab(SHARED_TEXT)[0]
    repo = make_repo(tmp_path / "repo", text)
    (repo / ".gitlab-ci.yml").write_text(text)  # as generated: anchors, aliases, `extends`
    r = run([str(require_tool("gitlab-ci-local")), "--preview"], cwd=repo, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = yaml.safe_load(r.stdout)
    before = {name: "".join(jobs[name]["before_script"])
              for name in ("cached", "plain", "split", "halt")}
    assert all("cicompile_step() {" in b for b in before.values())
    assert "cc_cache_save() (" in before["cached"]
    assert not any("cc_cache_save" in before[j] for j in ("plain", "split", "halt"))
    assert "cc_shim_split() {" in "".join(jobs["halt"]["script"])


# ---- end to end under gitlab-ci-local ----------------------------------------------------


def pipeline(tmp_path: Path, config: str, *extra: str, branch: str = "main",
             tag: str | None = None, files: dict[str, str] | None = None) -> GclRun:
    repo = make_repo(tmp_path / "repo", compile_gitlab(config)[0], files, branch=branch)
    return run_pipeline(repo, *extra, tag=tag)


def lines(log: str) -> set[str]:
    return {line.strip() for line in log.splitlines()}


@pytest.mark.e2e
def test_e2e_workspace(tmp_path: Path) -> None:
    r = pipeline(tmp_path, WORKSPACE, branch="ws-seed")
    assert r.returncode == 0, r.output
    assert r.passed == {"flow", "downstream"}, r.output
    log = lines(r.log("downstream"))
    assert "It worked: 42" in log
    assert "executable 42" in log


@pytest.mark.e2e
def test_e2e_layered_workspaces(tmp_path: Path) -> None:
    r = pipeline(tmp_path, LAYERED, branch="layers")
    assert r.returncode == 0, r.output
    assert r.passed == {"a", "b", "c", "d", "e"}, r.output
    assert "c-ok-2" in lines(r.log("c"))
    assert "d-ok-4" in lines(r.log("d"))
    assert "e-ok-6" in lines(r.log("e"))


@pytest.mark.e2e
def test_e2e_approval_blocks_until_run_by_hand(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "rules", compile_gitlab(APPROVAL)[0], branch="main")
    jobs = listed_jobs(repo)
    for hold in ("hold", "hold2"):
        assert (jobs[hold]["when"], jobs[hold]["allow_failure"]) == ("manual", False)
    assert jobs["deploy"]["when"] == "on_success"

    # Not approved: gitlab-ci-local refuses to start the jobs behind the manual ones (GitLab
    # shows them as blocked), so deploy never runs.
    waiting = pipeline(tmp_path / "waiting", APPROVAL, branch="main")
    assert waiting.returncode == 1
    assert "hold is when:manual, its needed by deploy" in waiting.output
    assert "deploy" not in waiting.ran and waiting.log("deploy") == ""

    # Approved by hand: deploy runs after the approval.
    approved = pipeline(tmp_path / "approved", APPROVAL, "--manual", "hold", "--manual", "hold2",
                        branch="dev")
    assert approved.returncode == 0, approved.output
    assert approved.passed == {"build", "build2", "hold", "hold2", "deploy", "deploy2"}, (
        approved.output)
    assert "built-2" in lines(approved.log("build"))
    assert "deployed-5" in lines(approved.log("deploy"))


@pytest.mark.e2e
@pytest.mark.parametrize(("branch", "tag"), list(FILTER_EXPECTED))
def test_e2e_filters_select_circleci_jobs(tmp_path: Path, branch: str, tag: str | None) -> None:
    text, _ = compile_gitlab(FILTERS)
    repo = make_repo(tmp_path / "repo", text, branch=branch)
    assert set(listed_jobs(repo, tag)) == FILTER_EXPECTED[(branch, tag)]
    # Every non-optional `needs` points at a job that exists in this pipeline.
    assert validate_needs(repo, tag=tag) == ""


@pytest.mark.e2e
def test_e2e_tag_pipeline_runs_tag_jobs_with_circleci_variables(tmp_path: Path) -> None:
    r = pipeline(tmp_path, FILTERS, tag="v1.2.3")
    assert r.returncode == 0, r.output
    assert r.passed == FILTER_EXPECTED[("main", "v1.2.3")], r.output
    assert "branch=[] tag=[v1.2.3] job=[after-tag-v]" in lines(r.log("after-tag-v"))


@pytest.mark.e2e
def test_e2e_step_semantics(tmp_path: Path) -> None:
    r = pipeline(tmp_path, STEPS, branch="feature/steps", files={"input.txt": "input\n"})
    # `steps` fails (a step failed); checkout-elsewhere passes.
    assert r.returncode == 1, r.output
    assert r.failed == {"steps"} and r.passed == {"checkout-elsewhere"}, r.output
    log = lines(r.log("steps"))
    expected = [
        "literal=[a$HOME b]",
        "level=[step]",
        "level-after=[job]",
        "branch=[feature/steps] tag=[unset] job=[steps] ci=[true]",
        "bash-env=[kept]",
        "fresh-shell=[]",
        "sub=[sub/dir]",
        "stdin=[empty]",
        "on-fail-6",
        "always-10",
        "background-8",  # shown when the job ends; the sleep does not hold the job up
    ]
    for line in expected:
        assert line in log, (line, r.log("steps"))
    assert any(x.startswith("wd=[") and x.endswith("same=[yes]") for x in log), log
    assert "unreachable-2" not in log  # pipefail
    assert "skipped-4" not in log  # on_success step after a failure
    # store_artifacts runs after the failure and its files are uploaded (`when: always`).
    stored = r.repo / ".gitlab-ci-local/artifacts/steps/.cicompile/artifacts/steps/the-sub"
    assert (stored / "dir/note.txt").read_text() == "sub=[sub/dir]\n"
    other = lines(r.log("checkout-elsewhere"))
    assert "checkout-ok-14" in other and "sh-shell-16" in other


def test_parallel_job_shape() -> None:
    doc = load(PARALLEL)
    assert doc["test"]["parallel"] == 3
    assert 'export CIRCLE_NODE_INDEX="$((CI_NODE_INDEX - 1))"' in doc["test"]["script"][0]
    assert ".cicompile/workspace/test-0-node*.tar" in doc["test"]["artifacts"]["paths"]
    assert "for layer in test-0-node0 test-0-node1 test-0-node2; do" in "".join(
        doc["check"]["script"])
    assert "parallel" not in doc["check"]


@pytest.mark.e2e
def test_e2e_parallel_nodes_split_tests_and_fill_the_workspace(tmp_path: Path) -> None:
    r = pipeline(tmp_path, PARALLEL)
    assert r.returncode == 0, r.output
    assert r.passed == {"test: [1/3]", "test: [2/3]", "test: [3/3]", "check"}, r.output
    check_shares(r.output)  # the three nodes' logs are only in the combined output
    assert "union checked: 7 files" in r.log("check")
    assert "cicompile: skipped (the job halted): after the halt" in r.log("check")


@pytest.mark.e2e
def test_e2e_parallel_job_fails_when_one_node_fails(tmp_path: Path) -> None:
    r = pipeline(tmp_path, ONE_NODE_FAILS)
    assert r.returncode != 0, r.output
    assert "after" not in r.ran
