"""Differential fidelity: which jobs exist, in which order, and which workspace layers they
read, on every target, against the independent reference evaluator (tests/reference.py) — for
every golden config and every corpus config, and these events (corpus_tools.events):

- push: main, feature/x, a branch matching each regex branch filter (of jobs and schedules),
  each branch a schedule names, tags v1.2.3 and nightly;
- schedule (configs with schedule `triggers`): a scheduled run on each of those branches —
  scheduled workflows run on their schedule's branches only, the others never (§5.7); GitHub
  only on the default branch (main: its schedules run there only, schedule-default-branch);
- manual, on every ref: GitLab's "Run pipeline" (CI_PIPELINE_SOURCE=web) is CircleCI's
  API-triggered pipeline (scheduled workflows do not run); GitHub's `workflow_dispatch` and
  make/shell naming the workflows run each workflow as on its own trigger, a scheduled one as
  on its schedule for that ref (corpus_tools.MANUAL).

GitHub: the gate job's bash, run (or, without a gate, the jobs' `if:`), and the workflow's
`on:`. GitLab: gitlab-ci-local's rule evaluation (`--list-json`, every config and event in two
processes). make/shell: the generated files run with CICOMPILE_DRY_RUN=1 (statuses decided,
approvals granted, no step executed), all the events of a config from one bash process.
Ordering: the transitive closure of each target's dependency edges, restricted to the
existing jobs, equals the closure of `requires` among them. Layers: the artifacts/tarballs
each attaching job reads are its upstream jobs' layers.

Workflows with a run-time `when`/`unless` are not compared (a warned approximation,
runtime-condition). Every target runs on every config by default (make and shell in four
parts each, which xdist spreads over the cores).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from cicompile import Result

from tests.corpus_tools import (
    EXPECTED_ERRORS,
    INVALID,
    Expectation,
    TargetView,
    compiled,
    config_id,
    corpus_files,
    expectation,
    github_view,
    gitlab_views,
    golden_inputs,
    invalid_manifest,
    local_view,
    mismatches,
    parts,
)
from tests.tools import ROOT, require_tool

MISMATCH_FILE = ROOT / ".pytest_cache" / "cicompile-differential.txt"


def inputs() -> list[Path]:
    return golden_inputs() + [p for p in corpus_files() if p.name not in EXPECTED_ERRORS] + [
        INVALID / r["file"] for r in invalid_manifest() if r["on_default_branch"] == "yes"]


def _check(target: str, paths: list[Path], tmp_path: Path, label: str = "") -> None:
    work = []
    for i, p in enumerate(paths):
        result = compiled(p, target)
        assert result.ok, (p, target)
        exp = expectation(p, compiled(p, "github"))
        work.append((i, p, result, exp))

    def view(item: tuple[int, Path, Result, Expectation]) -> TargetView:
        i, p, result, exp = item
        evs = exp.target_events(target)
        if target == "github":
            return github_view(result, evs)
        return local_view(result, target, evs, tmp_path / f"run{i}")

    def gitlab_chunk(chunk: list[tuple[int, Path, Result, Expectation]]) -> list[TargetView]:
        return gitlab_views([(r, exp.target_events(target)) for _, _, r, exp in chunk],
                            tmp_path / f"repo{chunk[0][0]}")

    # The views run generated code in subprocesses: two at a time (one per core). GitLab: one
    # gitlab-ci-local process per half of the configs, for all their events.
    with ThreadPoolExecutor(max_workers=2) as pool:
        if target == "gitlab":
            views = [v for vs in pool.map(gitlab_chunk, [work[::2], work[1::2]]) for v in vs]
            work = work[::2] + work[1::2]
        else:
            views = list(pool.map(view, work))
    problems = [f"{config_id(p)}: {m}" for (_, p, _, exp), v in zip(work, views, strict=True)
                for m in mismatches(exp, v, target)]
    events = Counter(parts(e)[0] for _, _, _, exp in work for e in exp.target_events(target))
    MISMATCH_FILE.parent.mkdir(exist_ok=True)
    with MISMATCH_FILE.open("a") as f:
        f.write(f"{label or target}: {len(paths)} configs, {sum(events.values())} events"
                f" ({', '.join(f'{k} {n}' for k, n in sorted(events.items()))}),"
                f" {len(problems)} mismatches\n")
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)


def test_github_gate_agrees_with_reference(tmp_path: Path) -> None:
    _check("github", inputs(), tmp_path)


# Every config, in interleaved parts: separate test items, which xdist runs side by side.
LOCAL_PARTS = 4


@pytest.mark.parametrize("part", range(LOCAL_PARTS))
@pytest.mark.parametrize("target", ["make", "shell"])
def test_local_targets_agree_with_reference(target: str, part: int, tmp_path: Path) -> None:
    require_tool("make")
    _check(target, inputs()[part::LOCAL_PARTS], tmp_path,
           label=f"{target} (part {part + 1} of {LOCAL_PARTS})")


def test_gitlab_rules_agree_with_reference(tmp_path: Path) -> None:
    from tests.gitlab_helpers import require_gcl

    require_gcl()
    _check("gitlab", inputs(), tmp_path)


# ---- the comparison itself -----------------------------------------------------------------

SCHEDULE = ROOT / "golden" / "schedule" / "input.yml"


def test_schedule_and_manual_events_mean_what_the_targets_do() -> None:
    """golden/schedule: `commit` runs on push, `nightly` (deps → audit, audit ignoring
    release/*) on a schedule for main and release/*. The reference per event and target."""
    exp = expectation(SCHEDULE, compiled(SCHEDULE, "github"))
    rel = next(n for t, k, n in map(parts, exp.events) if t == "push" and n.startswith("release/"))
    want = {
        (("branch", "main"), "github"): {"commit": {"deps", "test"}, "nightly": set()},
        (("schedule", "branch", "main"), "github"): {"commit": set(),
                                                     "nightly": {"deps", "audit"}},
        (("schedule", "branch", rel), "gitlab"): {"commit": set(), "nightly": {"deps"}},
        (("schedule", "branch", "feature/x"), "make"): {"commit": set(), "nightly": set()},
        # By hand: GitHub and make/shell run the scheduled workflow as its schedule would.
        (("manual", "branch", "main"), "github"): {"commit": {"deps", "test"},
                                                   "nightly": {"deps", "audit"}},
        (("manual", "branch", "main"), "shell"): {"commit": {"deps", "test"},
                                                  "nightly": {"deps", "audit"}},
        # GitLab's "Run pipeline" is a push-like pipeline: no scheduled workflow.
        (("manual", "branch", "main"), "gitlab"): {"commit": {"deps", "test"}, "nightly": set()},
        (("manual", "tag", "v1.2.3"), "github"): {"commit": set(), "nightly": set()},
    }
    for (ev, target), jobs in want.items():
        assert exp.want(ev, target) == jobs, (ev, target)
    assert ("schedule", "branch", "feature/x") not in exp.target_events("github")


def test_github_dispatch_on_a_tag_runs_no_unfiltered_job() -> None:
    """A workflow without filters has no gate; `workflow_dispatch` can still start it on a
    tag, where CircleCI would run none of its jobs (no `tags` filter)."""
    path = ROOT / "golden" / "seed-sequential" / "input.yml"
    result = compiled(path, "github")
    assert all("circleci-gate" not in text for text in result.files.values())
    exp = expectation(path, compiled(path, "github"))
    view = github_view(result, exp.target_events("github"))
    assert not mismatches(exp, view, "github")
    (wf,) = view.edges
    assert view.exists[("manual", "tag", "v1.2.3")][wf] == set()
    assert view.exists[("manual", "branch", "feature/x")][wf]


def test_gitlab_batch_finds_a_wrong_rule(tmp_path: Path) -> None:
    """The batched gitlab-ci-local evaluation sees a rule that disagrees with CircleCI, on the
    events where it does, and a workspace layer read from a job that is not upstream."""
    from tests.gitlab_helpers import require_gcl

    require_gcl()
    path = ROOT / "golden" / "release-pipeline" / "input.yml"
    result = compiled(path, "gitlab")
    exp = expectation(path, compiled(path, "github"))
    good = gitlab_views([(result, exp.target_events("gitlab"))], tmp_path / "good")[0]
    assert not mismatches(exp, good, "gitlab")
    text = result.files[".gitlab-ci.yml"]
    wrong_rule = '$CI_COMMIT_BRANCH == "main" ||'
    assert text.count(wrong_rule) == 1
    text = text.replace(wrong_rule, '$CI_COMMIT_BRANCH == "dev" ||').replace(
        "for layer in build-linux-0 build-mac-0 package-0;", "for layer in build-mac-0 package-0;")
    bad = gitlab_views([(replace(result, files={".gitlab-ci.yml": text}),
                         exp.target_events("gitlab"))], tmp_path / "bad")[0]
    found = mismatches(exp, bad, "gitlab")
    assert "gitlab push branch main workflow documentation: missing ['docs'], extra []" in found
    assert "gitlab manual branch main workflow documentation: missing ['docs'], extra []" in found
    assert not any("push tag" in m for m in found)
    assert any("publish attaches [('build-mac', 0), ('package', 0)]" in m for m in found)
