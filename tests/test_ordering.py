"""A filtered-out job between an approval and its dependents (the fuzzer's issue 5).

`j` requires `k` and `l`; `k` requires the approval `hold` and runs on `main` only. On any
other branch CircleCI drops the requirement on the absent `k` (semantics §5.3): `j` starts
after `l` alone, without the approval. Each target's effective ordering, measured per event
with the approval granted and withheld:

- make / shell: every node's existence is decided when the run starts, so `j` runs after `l`
  alone. Proved by a handshake: upstream of `hold`, `slow` waits until `j` has finished; if
  `j` waited for `hold` (which waits for `slow`), `slow` would time out and fail.
- GitHub: a job's `if:` is evaluated once its `needs` have finished, so a filtered-out `k`
  is skipped only after `hold`. The approval therefore runs only when a job that requires it
  runs (targets/approvals.py): here it is skipped with `k`, and `j` runs. Where an approval
  still runs for another job, the residual wait is warned (`approval-wait`). Run with
  tests/gha_runner.py, which waits on an unapproved environment as GitHub does.
- GitLab: the absent `k` is removed by `rules` and `j` needs it `optional`: `j` runs without
  the manual `hold` being played (gitlab-ci-local).

The differential check (tests/corpus_tools.mismatches) compares each target's ordering among
the existing jobs with the reference's; the last tests pin the fuzzer's case there.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from cicompile import build_ir, compile_config
from cicompile.conditions import And, IsKind, Match, Not, Pattern, RefKind, Trigger
from cicompile.diagnostics import Diagnostics
from cicompile.ir import Pipeline
from cicompile.targets import approvals
from cicompile.targets.approvals import approval_waits, github_existence, satisfiable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus_tools import (
    BASE_EVENTS,
    Expectation,
    TargetView,
    github_idle_approvals,
    github_view,
    local_view,
    mismatches,
    push_expectation,
)
from tests.gha_runner import WorkflowRunner
from tests.local_helpers import define_bodies, project, run
from tests.tools import require_tool

e2e = pytest.mark.e2e

JOB = "{docker: [{image: cimg/base:stable}], steps: [{run: %s}]}"


def config(entries: str, **commands: str) -> str:
    jobs = "\n".join(f"  {name}: {JOB % yaml.safe_dump(cmd, default_style=chr(39)).strip()}"
                     for name, cmd in commands.items())
    return f"version: 2.1\njobs:\n{jobs}\nworkflows:\n  wf:\n    jobs:\n{entries}"


# The fuzzer's shape.
ISSUE = config("""\
      - hold: {type: approval}
      - k: {requires: [hold], filters: {branches: {only: main}}}
      - l
      - j: {requires: [k, l]}
""", k="echo k", l="echo l", j="echo j")

# The approval still runs for `k2`: on GitHub `j` waits for it (warned).
RESIDUAL = config("""\
      - hold: {type: approval}
      - k: {requires: [hold], filters: {branches: {only: main}}}
      - k2: {requires: [hold]}
      - l
      - j: {requires: [k, l]}
""", k="echo k", k2="echo k2", l="echo l", j="echo j")

# The same as ISSUE for the local targets, with the handshake: off `main`, `slow` (upstream of
# the approval) succeeds only once `j` has run; on `main`, `j` must find `k`'s mark.
HANDSHAKE = config("""\
      - slow
      - hold: {type: approval, requires: [slow]}
      - k: {requires: [hold], filters: {branches: {only: main}}}
      - l
      - j: {requires: [k, l]}
""",
    slow='if [ "$CIRCLE_BRANCH" != main ]; then for i in $(seq 100); do'
         ' [ -e "$MARKS/j" ] && exit 0; sleep 0.1; done; exit 1; fi',
    k='touch "$MARKS/k"',
    # The Makefile's node vector is make's own business, as its scripts are.
    l='test -z "${CICOMPILE_LIVE+x}"',
    j='if [ "$CIRCLE_BRANCH" = main ]; then test -e "$MARKS/k"; fi; touch "$MARKS/j"')


def pipeline(text: str) -> Pipeline:
    diags = Diagnostics()
    p = build_ir(text, "c.yml", diags)
    assert isinstance(p, Pipeline), diags.sorted()
    return p


# ---- make / shell ------------------------------------------------------------------------


@e2e
@pytest.mark.parametrize(("branch", "approve", "want"), [
    ("feature/x", "", {"slow": "success", "hold": "held", "k": "skipped", "l": "success",
                       "j": "success"}),
    ("feature/x", "hold", {"slow": "success", "hold": "success", "k": "skipped",
                           "l": "success", "j": "success"}),
    ("main", "", {"slow": "success", "hold": "held", "k": "blocked", "l": "success",
                  "j": "blocked"}),
    ("main", "hold", {"slow": "success", "hold": "success", "k": "success", "l": "success",
                      "j": "success"}),
])
def test_local_targets_order_existing_jobs_only(target: str, tmp_path: Path, branch: str,
                                                approve: str, want: dict[str, str]) -> None:
    """Off `main`, `j` runs while `slow` (and so `hold`) is still pending: `slow` succeeds
    only because `j` finished first. On `main`, `j` runs after `k` or not at all."""
    marks = tmp_path / "marks"
    marks.mkdir()
    src = project(tmp_path, HANDSHAKE, target)
    env = {"CIRCLE_BRANCH": branch, "MARKS": str(marks)}
    if approve:
        env["CICOMPILE_APPROVE"] = approve
    r = run(target, src, env)
    assert r.returncode == 0, r.output
    assert r.statuses() == want, r.output
    assert "[k] skipped: not part of this pipeline (filters)" in r.stdout or branch == "main"


def test_make_graph_leaves_absent_nodes_out(tmp_path: Path) -> None:
    """The second make's prerequisites, as make itself reads them (`-p`), per branch: the
    runtime's `live` answer (what the first make hands over) leaves out the absent `k`."""
    make = require_tool("make")
    (tmp_path / "Makefile").write_text(compile_config(ISSUE, "make").files["Makefile"])
    bodies = define_bodies((tmp_path / "Makefile").read_text())

    def prerequisites(branch: str) -> dict[str, list[str]]:
        env = {"PATH": os.environ["PATH"], "CIRCLE_BRANCH": branch}
        live = subprocess.run(["bash", "-c", bodies["CICOMPILE_RUNTIME"], "cicompile", "live"],
                              cwd=tmp_path, text=True, capture_output=True,
                              env={**env, "CICOMPILE_NODE": bodies["CICOMPILE_EXISTS"]})
        assert live.returncode == 0, live.stderr
        db = subprocess.run([make, "-p", "-n", "-q", f"CICOMPILE_LIVE={live.stdout.strip()}"],
                            cwd=tmp_path, text=True, capture_output=True, env=env)
        out: dict[str, list[str]] = {}
        for line in db.stdout.splitlines():
            name, sep, rest = line.partition(":")
            if sep and name.startswith("job.wf.") and not rest.strip().startswith("export"):
                out[name] = [p for p in rest.split() if p != "cicompile-init"]
        return out

    assert prerequisites("main") == {"job.wf.hold": [], "job.wf.k": ["job.wf.hold"],
                                     "job.wf.l": [], "job.wf.j": ["job.wf.k", "job.wf.l"]}
    assert prerequisites("feature/x") == {"job.wf.hold": [], "job.wf.k": [],
                                          "job.wf.l": [], "job.wf.j": ["job.wf.l"]}


# ---- GitHub ------------------------------------------------------------------------------


def github_results(runner: WorkflowRunner, text: str, tmp_path: Path, branch: str,
                   approve: frozenset[str]) -> dict[str, str]:
    (rel, body), = compile_config(text, "github").files.items()
    path = tmp_path / Path(rel).name
    path.write_text(body)
    return {j: r.result for j, r in runner.run(path, "branch", branch, approve).items()
            if j != "circleci-gate"}


@e2e
@pytest.mark.parametrize(("branch", "approve", "want"), [
    # The approval nobody waits for is skipped, and `k` with it: `j` runs after `l`.
    ("feature/x", frozenset(), {"hold": "skipped", "k": "skipped", "l": "success",
                                "j": "success"}),
    ("main", frozenset(), {"hold": "waiting", "k": "waiting", "l": "success",
                           "j": "waiting"}),
    ("main", frozenset({"hold"}), {"hold": "success", "k": "success", "l": "success",
                                   "j": "success"}),
])
def test_github_skips_an_approval_nobody_waits_for(runner: WorkflowRunner, tmp_path: Path,
                                                   branch: str, approve: frozenset[str],
                                                   want: dict[str, str]) -> None:
    assert github_results(runner, ISSUE, tmp_path, branch, approve) == want


@e2e
def test_github_residual_wait_is_warned(runner: WorkflowRunner, tmp_path: Path) -> None:
    """`hold` runs for `k2`, so the absent `k` is skipped only once `hold` is approved, and
    `j` waits for it: what the warning says, at `j`'s entry."""
    got = github_results(runner, RESIDUAL, tmp_path, "feature/x", frozenset())
    assert got == {"hold": "waiting", "k": "waiting", "k2": "waiting", "l": "success",
                   "j": "waiting"}
    got = github_results(runner, RESIDUAL, tmp_path, "feature/x", frozenset({"hold"}))
    assert got == {"hold": "success", "k": "skipped", "k2": "success", "l": "success",
                   "j": "success"}
    warnings = [d for d in compile_config(RESIDUAL, "github", path="c.yml").diagnostics
                if d.code == "approval-wait"]
    assert [(d.span.line if d.span else 0, d.message) for d in warnings] == [(
        14, "on GitHub (workflow `wf`), `j` waits for approval `hold` even in pipelines where"
            " `k` is filtered out and CircleCI starts it without that approval: GitHub skips a"
            " filtered-out job only once everything it needs has finished, and `hold` still"
            " runs there for other jobs")]
    for target in ("gitlab", "make", "shell"):
        assert not any(d.code == "approval-wait"
                       for d in compile_config(RESIDUAL, target).diagnostics)
    assert not any(d.code == "approval-wait"
                   for d in compile_config(ISSUE, "github").diagnostics)


def test_migration_report_lists_the_wait() -> None:
    report = compile_config(RESIDUAL, "github", path="c.yml").report()
    row = next(line for line in report.splitlines() if "approval-wait" in line)
    assert row.startswith("| 14:9 |") and "`j` waits for approval `hold`" in row, row


def test_approval_runs_only_for_a_job_that_requires_it() -> None:
    """The gate's condition for each approval, from the last node back: an approval behind
    another approval that is skipped is skipped too; one nobody requires keeps its own."""
    text = config("""\
      - a: {type: approval}
      - b: {type: approval, requires: [a]}
      - k: {requires: [b], filters: {branches: {only: main}}}
      - end: {type: approval}
""", k="echo k")
    (wf,) = pipeline(text).workflows
    runs = github_existence(wf)
    assert runs["k"] == wf.node("k").exists
    assert runs["a"] == runs["b"] == runs["k"]  # only on main
    assert runs["end"] == wf.node("end").exists


@pytest.mark.parametrize(("entries", "waits"), [
    # The fuzzer's case: the approval runs only with `k`: nothing left to warn.
    ("""\
      - hold: {type: approval}
      - k: {requires: [hold], filters: {branches: {only: main}}}
      - l
      - j: {requires: [k, l]}
""", []),
    # `j` also requires `k2`, which exists whenever `j` does: it waits for `hold` on
    # CircleCI too.
    ("""\
      - hold: {type: approval}
      - k: {requires: [hold], filters: {branches: {only: main}}}
      - k2: {requires: [hold]}
      - j: {requires: [k, k2]}
""", []),
    # Deeper: the approval runs for `d`, the absent `k` is after `d`.
    ("""\
      - hold: {type: approval}
      - d: {requires: [hold]}
      - k: {requires: [d], filters: {branches: {only: main}}}
      - l
      - j: {requires: [k, l]}
      - after: {requires: [j]}
""", [("hold", "j", ("k",)), ("hold", "after", ("k",))]),
    # `j` cannot run without `k`: it is absent with it, nothing waits.
    ("""\
      - hold: {type: approval}
      - k: {requires: [hold], filters: {branches: {only: main}}}
      - k2: {requires: [hold]}
      - j: {requires: [k]}
""", []),
    # `j` waits for `hold` on CircleCI too, through `k` on main and through `k2` elsewhere:
    # no single path is always there, but one always is.
    ("""\
      - hold: {type: approval}
      - k: {requires: [hold], filters: {branches: {only: main}}}
      - k2: {requires: [hold], filters: {branches: {ignore: main}}}
      - j: {requires: [k, k2]}
""", []),
    # The same with no path on `dev`, where `hold` still runs for `k3`: CircleCI starts `j`
    # after `l` alone.
    ("""\
      - hold: {type: approval}
      - k: {requires: [hold], filters: {branches: {only: main}}}
      - k2: {requires: [hold], filters: {branches: {ignore: [main, dev]}}}
      - k3: {requires: [hold]}
      - l
      - j: {requires: [k, k2, l]}
""", [("hold", "j", ("k", "k2"))]),
])
def test_residual_waits_are_decided_statically(entries: str,
                                               waits: list[tuple[str, str, tuple[str]]]
                                               ) -> None:
    names = {line.split(":")[0].strip(" -") for line in entries.splitlines()}
    text = config(entries, **{n: f"echo {n}" for n in sorted(names)
                              if n not in ("hold",)})
    (wf,) = pipeline(text).workflows
    got = approval_waits(wf, github_existence(wf))
    assert [(w.approval, w.job, w.absent) for w in got] == waits


def test_residual_waits_on_a_large_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the approval, a ladder of diamonds, each rung reached through `x0` on some
    branches and `y0` on the others (a wait on CircleCI too, never warned), 35 jobs: decided
    quickly, the one real wait found."""
    import time

    lines = ["      - hold: {type: approval}",
             "      - x0: {requires: [hold], filters: {branches: {ignore: dev}}}",
             "      - y0: {requires: [hold], filters: {branches: {ignore: main}}}"]
    for i in range(1, 16):
        lines += [f"      - x{i}: {{requires: [x{i - 1}, y{i - 1}]}}",
                  f"      - y{i}: {{requires: [x{i - 1}, y{i - 1}]}}"]
    lines += ["      - k: {requires: [hold], filters: {branches: {only: main}}}",
              "      - l", "      - j: {requires: [k, l]}"]
    names = [line.split(":")[0].strip(" -") for line in lines]
    (wf,) = pipeline(config("\n".join(lines) + "\n",
                            **{n: "true" for n in names if n != "hold"})).workflows
    start = time.perf_counter()
    got = approval_waits(wf, github_existence(wf))
    assert time.perf_counter() - start < 2
    assert [(w.approval, w.job, w.absent) for w in got] == [("hold", "j", ("k",))]
    # Past the work limit: the per-job check, which cannot see that some path is always
    # there (it warns every rung), never misses the real wait.
    monkeypatch.setattr(approvals, "_MAX_WORK", 0)
    rough = approval_waits(wf, github_existence(wf))
    assert ("hold", "j", ("k",)) in [(w.approval, w.job, w.absent) for w in rough]
    assert len(rough) == 31


def test_satisfiable_keeps_to_what_pipelines_obey() -> None:
    """Never no for a possible pipeline; regexes are not intersected (a yes may be wrong)."""
    main, dev = Match(RefKind.BRANCH, Pattern("main")), Match(RefKind.BRANCH, Pattern("dev"))
    ma = Match(RefKind.BRANCH, Pattern("ma.*", regex=True))
    v = Match(RefKind.TAG, Pattern("v.*", regex=True))
    branch, tag = IsKind(RefKind.BRANCH), IsKind(RefKind.TAG)
    assert satisfiable(And((main, ma)))
    assert not satisfiable(And((main, Not(ma))))
    assert not satisfiable(And((main, dev)))
    assert not satisfiable(And((main, v)))
    assert not satisfiable(And((Not(branch), Not(tag))))
    assert not satisfiable(And((Trigger("webhook"), Trigger("api"))))
    assert not satisfiable(And((Not(Trigger("webhook")), Not(Trigger("api")),
                                Not(Trigger("scheduled_pipeline")))))
    assert satisfiable(And((ma, Match(RefKind.BRANCH, Pattern("x.*", regex=True)))))


# ---- GitLab ------------------------------------------------------------------------------


@e2e
def test_gitlab_runs_j_without_the_manual_job(tmp_path: Path) -> None:
    from tests.gitlab_helpers import make_repo, require_gcl, run_pipeline

    require_gcl()
    repo = make_repo(tmp_path / "repo", compile_config(ISSUE, "gitlab").files[".gitlab-ci.yml"],
                     branch="feature/x")
    r = run_pipeline(repo)
    assert r.passed == {"l", "j"}, r.output  # `hold` waits to be played, `k` is not there
    # On main `j` needs `k`, which needs `hold` (gitlab-ci-local refuses to run a pipeline
    # whose needed manual job is not played).
    r = run_pipeline(make_repo(tmp_path / "main",
                               compile_config(ISSUE, "gitlab").files[".gitlab-ci.yml"]),
                     "--manual", "hold")
    assert r.passed == {"hold", "k", "l", "j"}, r.output


# ---- the differential check --------------------------------------------------------------


def expectation(text: str, events: list[tuple[str, ...]] = BASE_EVENTS) -> Expectation:
    return push_expectation(yaml.safe_load(text), events)


@pytest.mark.parametrize("text", [ISSUE, RESIDUAL], ids=["issue", "residual"])
def test_differential_agrees_on_the_fuzzer_case(text: str, tmp_path: Path) -> None:
    """Regression: on every target the ordering among existing jobs is CircleCI's. GitHub may
    add waits after ordinary jobs (timing) and warned waits after approvals; it skips an
    approval none of whose dependents runs (equivalent: nothing waits for it)."""
    exp = expectation(text)
    gh = github_view(compile_config(text, "github", path="c.yml"), BASE_EVENTS)
    assert mismatches(exp, gh, "github") == []
    for target in ("make", "shell"):
        view = local_view(compile_config(text, target), target, BASE_EVENTS, tmp_path / target)
        assert mismatches(exp, view, target) == []


def test_differential_finds_an_unwarned_approval_wait() -> None:
    """The control: the residual wait without its warning, or a vacuous approval that runs,
    is a mismatch."""
    exp = expectation(RESIDUAL)
    gh = github_view(compile_config(RESIDUAL, "github", path="c.yml"), BASE_EVENTS)
    assert gh.github_waits == {("wf", "hold", "j")}
    unwarned = TargetView(gh.exists, gh.edges, layers=gh.layers, github_waits=set())
    assert "github push branch feature/x workflow wf: ordering missing [], extra" \
           " [('hold', 'j')]" in mismatches(exp, unwarned, "github")
    exp = expectation(ISSUE)
    gh = github_view(compile_config(ISSUE, "github", path="c.yml"), BASE_EVENTS)
    ran = {e: {wf: jobs | {"hold"} for wf, jobs in per.items()} for e, per in gh.exists.items()}
    found = mismatches(exp, TargetView(ran, gh.edges, layers=gh.layers, github_waits=set()),
                       "github")
    assert "github push branch feature/x workflow wf: missing [], extra ['hold']" in found


@pytest.fixture(scope="module")
def long_fuzz(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--long-fuzz"))


BRANCH_FILTERS: list[dict[str, object] | None] = [
    None, {"branches": {"only": "main"}}, {"branches": {"only": ["dev", "main"]}},
    {"branches": {"ignore": "main"}}]
BRANCHES = [("branch", "main"), ("branch", "dev"), ("branch", "feature/x")]


@st.composite
def approval_workflows(draw: st.DrawFn) -> dict[str, object]:
    """Dense DAGs, many approvals, a few branch filters: where approvals sit behind and
    before filtered-out jobs (test_filters_differential's generator rarely builds that)."""
    n = draw(st.integers(3, 7))
    names = [f"j{i}" for i in range(n)]
    entries: list[object] = []
    for i, name in enumerate(names):
        body: dict[str, object] = {}
        if i and draw(st.integers(0, 3)):
            body["requires"] = draw(st.lists(st.sampled_from(names[:i]), min_size=1,
                                             max_size=3, unique=True))
        f = draw(st.sampled_from(BRANCH_FILTERS))
        if f:
            body["filters"] = f
        if i < n - 1 and draw(st.booleans()):
            body["type"] = "approval"
        entries.append({name: body} if body else name)
    jobs = {name: {"docker": [{"image": "cimg/base:stable"}], "steps": [{"run": "true"}]}
            for name in names}
    return {"version": 2, "jobs": jobs, "workflows": {"version": 2, "wf": {"jobs": entries}}}


def test_github_ordering_on_random_workflows(long_fuzz: bool) -> None:
    """Random workflows with approvals and filters, on three branches: the GitHub gate, run,
    and the `needs` edges against the reference, with the rules of the module docstring: no
    approval wait the compiler did not warn about, an approval nobody waits for skipped,
    nothing CircleCI orders left unordered. Also counts that the examples reach both
    rules."""
    seen = {"idle": 0, "warned": 0}

    @settings(max_examples=400 if long_fuzz else 60, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(approval_workflows())
    def check(config: dict[str, object]) -> None:
        text = yaml.safe_dump(config, sort_keys=False)
        exp = expectation(text, BRANCHES)
        view = github_view(compile_config(text, "github", path="c.yml"), BRANCHES)
        assert mismatches(exp, view, "github") == [], text
        seen["warned"] += bool(view.github_waits)
        seen["idle"] += any(github_idle_approvals(exp.config, "wf", jobs["wf"])
                            for jobs in exp.exists.values())

    check()
    assert seen["idle"] and seen["warned"], seen
