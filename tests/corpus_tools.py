"""Shared pieces of the corpus sweep, the differential tests and the fuzzers.

- the configs: golden inputs, and the real-world corpus under ../shared/corpus (skipped
  cleanly when ../shared is absent; never copied into the repository);
- compiling a config for every target in-process (memoised per test process);
- for a compiled config and a ref: which CircleCI jobs exist according to each target
  (GitHub: the gate job's bash, run; GitLab: gitlab-ci-local's rule evaluation; make/shell:
  the generated files run with CICOMPILE_DRY_RUN=1), and the ordering each target imposes
  (the transitive closure of its dependency edges), to compare with tests/reference.py.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cicompile import Result, compile_config
from cicompile.ir import Pipeline
from cicompile.targets.gitlab import gitlab_job_names

from tests.gha_runner import gate_outputs
from tests.golden_cases import case_dirs
from tests.reference import (
    existing_jobs,
    expanded_config,
    ordering,
    requirements,
    transitive_closure,
    workflow_entries,
    workspace_layers,
)
from tests.tools import SHARED

TARGETS = ("github", "gitlab", "make", "shell")
CORPUS = SHARED / "corpus" / "circleci"
INVALID = SHARED / "corpus" / "circleci-invalid"

# Configs of the corpus that CircleCI itself would reject too: (code, reason).
EXPECTED_ERRORS = {
    "filecoin-project__lotus.yml": (
        "unknown-parameter", "passes `resource-class` to job `test`, which declares"
        " `resource_class` only (CircleCI: \"Unexpected argument(s)\")"),
    "wandb__wandb.yml": (
        "invalid-type", "a `run` step with an empty `name:` (null, not a string)"),
}

Ref = tuple[str, str]  # ("branch" | "tag", name)
# A push of a ref: (kind, name); another pipeline: (trigger, kind, name), the trigger being
# `schedule` (a scheduled run on that branch) or `manual` (started by hand, see MANUAL).
Event = tuple[str, ...]

# What "started by hand" means per target. `api`: CircleCI's API/UI-triggered pipeline, the
# non-scheduled workflows as on a push, scheduled ones not at all (GitLab's "Run pipeline":
# CI_PIPELINE_SOURCE=web, which the generated rules treat as a push). `dispatch`: each
# workflow started on its own, as on its own trigger: a scheduled workflow as on its schedule
# for that ref (GitHub `workflow_dispatch`, which every generated workflow has; make
# `workflow.NAME` / `bash ci.sh NAME`, which run a named workflow whatever its trigger).
MANUAL = {"github": "dispatch", "gitlab": "api", "make": "dispatch", "shell": "dispatch"}
DEFAULT_BRANCH = "main"  # GitHub runs schedules on the default branch only


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.yml")) if CORPUS.is_dir() else []


def invalid_manifest() -> list[dict[str, str]]:
    manifest = INVALID / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    lines = manifest.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=False)) for line in lines[1:] if line]


def golden_inputs() -> list[Path]:
    return [c / "input.yml" for c in case_dirs() if not (c / "exit_code").exists()]


def config_id(path: Path) -> str:
    return path.parent.name if path.name == "input.yml" else path.name


@functools.cache
def compiled(path: Path, target: str) -> Result:
    return compile_config(path.read_text(), target, path=config_id(path))


# ---- refs -------------------------------------------------------------------------------

BASE_EVENTS: list[Event] = [("branch", "main"), ("branch", "feature/x"), ("tag", "v1.2.3"),
                            ("tag", "nightly")]


def _matching_name(regex: str) -> str | None:
    """A branch name the (Java-style) regex matches in full, or None."""
    candidates = [
        re.sub(r"\\d[+*]?|\[0-9\][+*]?", "1", regex.strip("^$")).replace(".*", "x")
        .replace(".+", "x").replace("\\", ""),
        regex.strip("^$").replace("\\", ""),
    ]
    alt = re.fullmatch(r"\^?\(?([^|()]+)\|.*", regex)
    if alt:
        candidates.append(alt.group(1).replace("\\", ""))
    for c in candidates:
        if c and re.fullmatch(r"[\w./-]+", c) and _fullmatch(regex, c):
            return c
    from hypothesis import find, settings
    from hypothesis import strategies as st
    try:
        return find(st.from_regex(regex, fullmatch=True).filter(
            lambda s: bool(re.fullmatch(r"[\w./-]+", s))), lambda s: True,
            settings=settings(database=None, derandomize=True, max_examples=200))
    except Exception:  # noqa: BLE001 - no such name: the regex is only skipped
        return None


def _fullmatch(regex: str, name: str) -> bool:
    try:
        return re.fullmatch(regex, name) is not None
    except re.error:
        return False


def _scheduled(config: dict[str, Any]) -> dict[str, Any]:
    """{workflow: its schedule `triggers`} for the workflows that have some."""
    wfs = config.get("workflows")
    return {str(k): wf["triggers"] for k, wf in (wfs if isinstance(wfs, dict) else {}).items()
            if isinstance(wf, dict) and wf.get("triggers")}


def events(config: dict[str, Any]) -> list[Event]:
    """Push to main, feature/x, a branch matching each regex branch filter (of jobs and of
    schedules) and each branch a schedule names, tags; then a scheduled run on each of those
    branches (when some workflow has schedule `triggers`), and a manual run on every ref."""
    refs = list(BASE_EVENTS)
    specs: set[str] = set()
    plain: set[str] = set()

    def collect(branches: Any, names: bool) -> None:
        for key in ("only", "ignore"):
            v = branches.get(key) if isinstance(branches, dict) else None
            for spec in v if isinstance(v, list) else [v] if v else []:
                spec = str(spec)
                if len(spec) > 2 and spec.startswith("/") and spec.endswith("/"):
                    specs.add(spec[1:-1])
                elif names and key == "only":
                    plain.add(spec)

    for wf in (config.get("workflows") or {}).values():
        for e in (wf.get("jobs") or []) if isinstance(wf, dict) else []:
            body = next(iter(e.values())) if isinstance(e, dict) else None
            filters = (body or {}).get("filters")  # a string is an expression filter
            collect((filters.get("branches") or {}) if isinstance(filters, dict) else {},
                    names=False)
    scheduled = _scheduled(config)
    for triggers in scheduled.values():
        for t in triggers if isinstance(triggers, list) else []:
            sched = t.get("schedule") if isinstance(t, dict) else None
            if isinstance(sched, dict):
                collect((sched.get("filters") or {}).get("branches"), names=True)
    names = [_matching_name(regex) for regex in sorted(specs)] + sorted(plain)
    for name in names:
        if name and ("branch", name) not in refs:
            refs.append(("branch", name))
    # Without `triggers` a scheduled run is not a CircleCI event of this config: CircleCI's
    # newer scheduled pipelines start an ordinary pipeline (trigger_source, `when`).
    branches = [n for k, n in refs if k == "branch"] if scheduled else []
    return (refs + [("schedule", "branch", b) for b in branches]
            + [("manual", k, n) for k, n in refs])


def parts(ev: Event) -> tuple[str, str, str]:
    """(trigger, ref kind, ref name): a two-element event is a push."""
    return ("push", ev[0], ev[1]) if len(ev) == 2 else (ev[0], ev[1], ev[2])


def ref_of(ev: Event) -> Ref:
    _, kind, name = parts(ev)
    return kind, name


# ---- what the reference says ------------------------------------------------------------

@dataclass
class Expectation:
    config: dict[str, Any]
    events: list[Event]
    exists: dict[Event, dict[str, set[str]]]  # event → workflow → jobs (CircleCI's rules)
    excluded: dict[str, str]  # workflow → why it is not compared (a warned approximation)

    def target_events(self, target: str) -> list[Event]:
        """The events compared on `target`: GitHub runs schedules only on the default branch
        (the warned approximation schedule-default-branch). make/shell: without scheduled
        workflows a manual run differs from a push only by naming the workflows, whatever the
        ref, so one manual run (main) is enough (each run costs a process)."""
        scheduled = bool(_scheduled(self.config))
        return [e for e in self.events if not (
            (target == "github" and parts(e)[0] == "schedule" and e[2] != DEFAULT_BRANCH)
            or (target in ("make", "shell") and not scheduled and parts(e)[0] == "manual"
                and e[1:] != ("branch", DEFAULT_BRANCH)))]

    def want(self, ev: Event, target: str) -> dict[str, set[str]]:
        """{workflow: jobs} `target` must run for `ev` (see MANUAL for manual runs)."""
        trigger, kind, name = parts(ev)
        if trigger != "manual" or MANUAL[target] == "api":
            return self.exists[ev]
        scheduled = _scheduled(self.config)
        branch, tag = (name, "") if kind == "branch" else ("", name)
        on_schedule = existing_jobs(self.config, branch, tag, "schedule")
        return {wf: on_schedule[wf] if wf in scheduled else jobs
                for wf, jobs in self.exists[ev].items()}


def push_expectation(config: dict[str, Any], evs: list[Event]) -> Expectation:
    """The reference's jobs for pushes of `evs` in a generated config (nothing excluded)."""
    return Expectation(config, evs, {
        e: existing_jobs(config, *((e[1], "") if e[0] == "branch" else ("", e[1])))
        for e in evs}, {})


def expectation(path: Path, result: Result) -> Expectation:
    config = expanded_config(path.read_text(), config_id(path))
    evs = events(config)
    exists = {}
    for ev in evs:
        trigger, kind, name = parts(ev)
        exists[ev] = existing_jobs(config, *((name, "") if kind == "branch" else ("", name)),
                                   trigger="schedule" if trigger == "schedule" else "push")
    excluded = {}
    for d in result.diagnostics:
        m = re.match(r"workflow '(.*?)': `(when|unless)` depends on", d.message)
        if d.code == "runtime-condition" and m:
            excluded[m.group(1)] = f"`{m.group(2)}` known only at run time (runtime-condition)"
    return Expectation(config, evs, exists, excluded)


def wf_names(result: Result) -> list[str]:
    assert isinstance(result.pipeline, Pipeline)
    return [wf.name for wf in result.pipeline.workflows]


# ---- GitHub -----------------------------------------------------------------------------

@dataclass
class TargetView:
    """Per workflow: the jobs that exist for each event, and the dependency edges."""
    exists: dict[Event, dict[str, set[str]]]
    edges: dict[str, set[tuple[str, str]]]
    # GitLab drops absent jobs from the pipeline, make/shell decide them before scheduling:
    # their edges order nothing.
    absent_order_nothing: bool = False
    # GitHub (targets/approvals.py): an absent job is skipped only once its own needs have
    # finished, so its dependents start after them too. Timing only, except behind an
    # approval: such a wait must be one the compiler warned about (approval-wait), listed
    # here as (workflow, approval, job). An approval none of whose dependents runs is skipped.
    github_waits: set[tuple[str, str, str]] | None = None
    # {workflow: {job that attaches: the layers it reads, in order, as (persisting job, index
    # of its persist step)}}: static, a layer of an absent job is simply not there at run time.
    layers: dict[str, dict[str, list[tuple[str, int]]]] = field(default_factory=dict)


def _layer_owners(produced: dict[str, str], attached: dict[str, list[str]],
                  ) -> dict[str, list[tuple[str, int]]]:
    """{attaching job: [(owner, index)...]} from {layer name: owner} and {job: layer names};
    names end with the persist step's index (`-N`, after any per-node suffix is removed)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for job, names in attached.items():
        owners = [(produced[n], int(n.rsplit("-", 1)[1])) for n in names]
        out[job] = list(dict.fromkeys(owners))
    return out


def _github_glob(pattern: str, name: str) -> bool:
    rx = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    return re.fullmatch(rx, name) is not None


def _push_triggers(push: Any, kind: str, name: str) -> bool:
    if not isinstance(push, dict):
        return push is None or push == {}
    inc, exc = ("branches", "branches-ignore") if kind == "branch" else ("tags", "tags-ignore")
    other = ("tags", "tags-ignore") if kind == "branch" else ("branches", "branches-ignore")
    if inc not in push and exc not in push:
        return not any(k in push for k in other)
    if inc in push:
        return any(_github_glob(p, name) for p in push[inc])
    return not any(_github_glob(p, name) for p in push[exc])


GITHUB_EVENT = {"push": "push", "schedule": "schedule", "manual": "workflow_dispatch"}


def _github_started(on: Any, ev: Event) -> bool:
    """Whether GitHub starts a workflow with this `on:` for the event."""
    trigger, kind, name = parts(ev)
    on = on if isinstance(on, dict) else {}
    if trigger == "push":
        return "push" in on and _push_triggers(on["push"], kind, name)
    return GITHUB_EVENT[trigger] in on


def _github_if_jobs(jobs: dict[str, Any], ev: Event) -> set[str]:
    """Without a gate: the jobs whose `if:` holds for the event, a job skipped when one of its
    needs was (GitHub's default `success()`). Such workflows only test the ref's kind."""
    kind = parts(ev)[1]
    ran: set[str] = set()
    for jid, job in jobs.items():  # cicompile writes jobs in topological order
        needs = job.get("needs") or []
        cond = str(job.get("if", ""))
        on_branches = "github.ref_type == 'branch'" in cond
        assert on_branches or "github.ref" not in cond, f"{jid}: a ref test without a gate"
        # (other terms test needs' results: when a job runs, not whether it exists)
        ok = kind == "branch" or not on_branches
        if ok and all(n in ran for n in ([needs] if isinstance(needs, str) else needs)):
            ran.add(jid)
    return ran


def github_view(result: Result, evs: list[Event]) -> TargetView:
    exists: dict[Event, dict[str, set[str]]] = {e: {} for e in evs}
    edges: dict[str, set[tuple[str, str]]] = {}
    layers: dict[str, dict[str, list[tuple[str, int]]]] = {}
    for text in result.files.values():
        doc = yaml.safe_load(text)
        wf = re.search(r"^# CircleCI workflow: (.*)$", text, re.M)
        assert wf, text[:300]
        wf_name = wf.group(1)
        on = doc.get("on", doc.get(True))
        names = {jid: str(j.get("name", jid)) for jid, j in doc["jobs"].items()
                 if jid != "circleci-gate"}
        edges[wf_name] = set()
        for jid, j in doc["jobs"].items():
            needs = j.get("needs") or []
            for n in [needs] if isinstance(needs, str) else needs:
                if n != "circleci-gate" and jid != "circleci-gate":
                    edges[wf_name].add((names[n], names[jid]))
        produced: dict[str, str] = {}
        attached: dict[str, list[str]] = {}
        for jid, j in doc["jobs"].items():
            for step in j.get("steps") or []:
                art = str((step.get("with") or {}).get("name", ""))
                if not art.startswith("cicompile-workspace-"):
                    continue
                art = re.sub(r"-node(\d+|\$\{\{.*\}\})$", "", art)
                if str(step.get("uses", "")).startswith("actions/upload-artifact"):
                    produced[art] = names[jid]
                elif str(step.get("uses", "")).startswith("actions/download-artifact"):
                    attached.setdefault(names[jid], []).append(art)
        layers[wf_name] = _layer_owners(produced, attached)
        gate = doc["jobs"].get("circleci-gate")
        runs = [(GITHUB_EVENT[parts(e)[0]], *ref_of(e)) for e in evs]
        if gate is None:
            outputs = {r: _github_if_jobs(doc["jobs"], e) for r, e in zip(runs, evs, strict=True)}
        else:
            outputs = gate_outputs(gate["steps"][0]["run"], list(dict.fromkeys(runs)))
        for e, r in zip(evs, runs, strict=True):
            started = _github_started(on, e)
            exists[e][wf_name] = {names[j] for j in outputs[r] if j in names} if started \
                else set()
    waits = set()
    for d in result.diagnostics:
        m = re.match(r"on GitHub \(workflow `(.*?)`\), `(.*?)` waits for approval `(.*?)`",
                     d.message)
        if d.code == "approval-wait" and m:
            waits.add((m.group(1), m.group(3), m.group(2)))
    return TargetView(exists, edges, layers=layers, github_waits=waits)


def github_idle_approvals(config: dict[str, Any], wf: str, existing: set[str]) -> set[str]:
    """The existing approvals GitHub skips: an approval runs only when some node requiring it
    runs (targets/approvals.py). Such an approval has no effect on CircleCI either (no job
    waits for it), so skipping it is equivalent; it lets the jobs behind it be skipped at
    once instead of after someone approves."""
    entries = workflow_entries(config)[wf]
    dependents: dict[str, list[str]] = {name: [] for name in entries}
    for name, body in entries.items():
        for r in dict.fromkeys(requirements(body)):
            dependents[r].append(name)
    memo: dict[str, bool] = {}

    def runs(n: str) -> bool:
        if n not in memo:
            memo[n] = n in existing and (entries[n].get("type") != "approval"
                                         or not dependents[n]
                                         or any(runs(d) for d in dependents[n]))
        return memo[n]

    return {n for n in existing if not runs(n)}


# ---- GitLab (gitlab-ci-local) -----------------------------------------------------------

# CI_PIPELINE_SOURCE per trigger: a manual run is GitLab's "Run pipeline" button.
GITLAB_SOURCE = {"push": "push", "schedule": "schedule", "manual": "web"}
_GITLAB_GLOBAL = {"default", "include", "stages", "variables", "workflow", "image", "services",
                  "cache", "before_script", "after_script", "spec"}
# What decides whether a job is in the pipeline; the rest (needs, scripts...) is left out.
_GITLAB_RULE_KEYS = ("rules", "when", "variables")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@functools.lru_cache(maxsize=256)
def _gitlab_doc(gitlab_yml: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.load(gitlab_yml, Loader=_LOADER)  # noqa: S506 - a safe loader
    return doc


def gitlab_rules_jobs(gitlab_yml: str, evs: list[Event],
                      prefix: str = "") -> tuple[dict[str, Any], list[list[str]]]:
    """Jobs that evaluate one config's rules for every event at once, and the config's jobs
    behind each rule set.

    Jobs with the same rules (and variables) are in or out together, so each distinct rule
    set `k` is evaluated once per event `i`, as job `{prefix}e{i}/r{k}`, whose variables set
    the pipeline's CI_PIPELINE_SOURCE and CI_COMMIT_BRANCH or CI_COMMIT_TAG (see
    gitlab_helpers for tag pipelines): gitlab-ci-local evaluates `rules:if` with the job's
    variables. The config's global `variables` are merged into each job."""
    doc = _gitlab_doc(gitlab_yml)
    groups: dict[str, list[str]] = {}
    bodies: dict[str, dict[str, Any]] = {}
    for name, job in doc.items():
        if name in _GITLAB_GLOBAL or name.startswith(".") or not isinstance(job, dict):
            continue
        body = {k: job[k] for k in _GITLAB_RULE_KEYS if k in job}
        body["variables"] = {**(doc.get("variables") or {}), **(job.get("variables") or {})}
        key = json.dumps(body, sort_keys=True)
        groups.setdefault(key, []).append(name)
        bodies[key] = body
    out: dict[str, Any] = {}
    for i, ev in enumerate(evs):
        trigger, kind, name = parts(ev)
        # gitlab-ci-local derives CI_COMMIT_BRANCH from the checkout unless it is set: empty
        # in tag pipelines (which rules treat as unset, as GitLab leaves it there).
        ref = {"CI_PIPELINE_SOURCE": GITLAB_SOURCE[trigger],
               **({"CI_COMMIT_BRANCH": name} if kind == "branch"
                  else {"CI_COMMIT_BRANCH": "", "CI_COMMIT_TAG": name})}
        for k, body in enumerate(bodies.values()):
            out[f"{prefix}e{i}/r{k}"] = {**body, "variables": {**body["variables"], **ref},
                                         "script": [":"]}
    return out, list(groups.values())


def gitlab_views(items: list[tuple[Result, list[Event]]], repo: Path) -> list[TargetView]:
    """gitlab_view for many configs with one gitlab-ci-local process (its start-up dominates:
    one process per config and event took 146 s for the corpus's push events alone)."""
    from tests.gitlab_helpers import gcl_list, make_repo

    pipeline: dict[str, Any] = {}
    groups: list[list[list[str]]] = []
    for n, (result, evs) in enumerate(items):
        jobs, g = gitlab_rules_jobs(result.files[".gitlab-ci.yml"], evs, f"c{n}/")
        pipeline.update(jobs)
        groups.append(g)
    make_repo(repo, yaml.dump(pipeline, Dumper=_DUMPER, sort_keys=False))
    listing = gcl_list(repo)
    views = []
    for n, (result, evs) in enumerate(items):
        assert isinstance(result.pipeline, Pipeline)
        back = {gl: wf_node for wf_node, gl in gitlab_job_names(result.pipeline).items()}
        exists: dict[Event, dict[str, set[str]]] = {e: {wf: set() for wf in wf_names(result)}
                                                    for e in evs}
        for j in listing:
            m = re.fullmatch(rf"c{n}/e(\d+)/r(\d+)", j["name"])
            if m and j["when"] != "never":
                for gl in groups[n][int(m.group(2))]:
                    wf, node = back[gl]
                    exists[evs[int(m.group(1))]][wf].add(node)
        edges: dict[str, set[tuple[str, str]]] = {wf: set() for wf in wf_names(result)}
        produced: dict[str, dict[str, str]] = {wf: {} for wf in wf_names(result)}
        attached: dict[str, dict[str, list[str]]] = {wf: {} for wf in wf_names(result)}
        for gl, job in _gitlab_doc(result.files[".gitlab-ci.yml"]).items():
            if gl not in back:
                continue
            wf, node = back[gl]
            for need in job.get("needs") or []:
                nwf, nnode = back[need["job"] if isinstance(need, dict) else need]
                assert nwf == wf
                edges[wf].add((nnode, node))
            for path in (job.get("artifacts") or {}).get("paths") or []:
                m = re.fullmatch(r"\.cicompile/workspace/(.*?)(-node\*)?\.tar", path)
                if m:
                    produced[wf][m.group(1)] = node
            for line in job.get("script") or []:
                m = re.search(r"^for layer in (.*); do$", str(line), re.M)
                if m:
                    attached[wf].setdefault(node, []).extend(
                        re.sub(r"-node\d+$", "", n) for n in m.group(1).split())
        views.append(TargetView(exists, edges, absent_order_nothing=True, layers={
            wf: _layer_owners(produced[wf], attached[wf]) for wf in wf_names(result)}))
    return views


def gitlab_view(result: Result, evs: list[Event], repo: Path) -> TargetView:
    return gitlab_views([(result, evs)], repo)[0]


# ---- make / shell (CICOMPILE_DRY_RUN=1) ---------------------------------------------------

_NODE = re.compile(r"^cc_node (.*)$", re.M)
_WORKFLOW = re.compile(r"^cc_workflow (.*)$", re.M)


def _node_index(text: str) -> tuple[dict[str, str], dict[str, tuple[str, str, str, list[str]]]]:
    text = text.replace("$$", "$")
    wfs = {}
    for line in _WORKFLOW.findall(text):
        wid, wname, *_ = shlex.split(line)
        wfs[wid] = wname
    nodes = {}
    for line in _NODE.findall(text):
        key, wid, node_id, _kind, name, *needs = shlex.split(line)
        nodes[key] = (wid, node_id, name, needs)
    return wfs, nodes


def _local_runs(target: str, fname: str, text: str, wfs: dict[str, str],
                nodes: dict[str, tuple[str, str, str, list[str]]], evs: list[Event],
                workdir: Path) -> list[dict[str, set[str]]]:
    """Run the generated file once per event with CICOMPILE_DRY_RUN=1, every event from one
    bash process (a process per event cost more than the runs: ci.sh is up to 0.5 MB of bash
    to parse), each in its own run directory; then {workflow: jobs that exist} per event.

    make: `make -s -j4 [workflow.W...]` per event. ci.sh: the script is sourced once, without
    its last line (`cc_shell_main "$@"`), and each event calls `cc_shell_main [W...]` in a
    subshell: the same code as `bash ci.sh [W...]`, from a fork instead of a new bash."""
    lines = ["set -u"]
    if target == "shell":
        body, last = text.rstrip("\n").rsplit("\n", 1)
        assert last == 'cc_shell_main "$@"', last
        (workdir / "ci-lib.sh").write_text(body + "\n")
        lines.append("source ./ci-lib.sh")
    for i, ev in enumerate(evs):
        trigger, kind, name = parts(ev)
        env = {"CICOMPILE_RUN_DIR": f"{workdir}/run{i}",
               "CIRCLE_BRANCH" if kind == "branch" else "CIRCLE_TAG": name}
        if trigger == "schedule":
            env["CICOMPILE_TRIGGER"] = "schedule"
        # By hand: every workflow named on the command line (each runs whatever its trigger).
        named = list(wfs) if trigger == "manual" else []
        cmd = (["make", "-s", "-j4", "-f", fname, *[f"workflow.{w}" for w in named]]
               if target == "make" else ["cc_shell_main", *named])
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        lines.append(f"(export {exports}; {shlex.join(cmd)}) >run{i}.log 2>&1; echo \"{i} $?\"")
    (workdir / "events.sh").write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "MAKE", "CICOMPILE"))}
    env.update(CICOMPILE_DRY_RUN="1", CI="true")
    r = subprocess.run(["bash", "events.sh"], cwd=workdir, env=env, capture_output=True,
                       text=True, timeout=1800, stdin=subprocess.DEVNULL)
    codes = dict(line.split() for line in r.stdout.splitlines())
    assert r.returncode == 0 and len(codes) == len(evs), r.stdout[-2000:] + r.stderr[-2000:]
    out = []
    for i, ev in enumerate(evs):
        log = workdir / f"run{i}.log"
        assert codes[str(i)] == "0", (ev, log.read_text()[-3000:])
        per: dict[str, set[str]] = {w: set() for w in wfs.values()}
        for wid, node_id, nname, _ in nodes.values():
            status = (workdir / f"run{i}" / "status" / wid / node_id).read_text().strip()
            # Every job succeeds in a dry run: `blocked` is a job that exists but requires
            # another to fail (flexible requires); `skipped` one that does not exist.
            assert status in ("success", "skipped", "blocked"), (ev, nname, status)
            if status != "skipped":
                per[wfs[wid]].add(nname)
        out.append(per)
    return out


def local_view(result: Result, target: str, evs: list[Event], workdir: Path) -> TargetView:
    (fname, text), = result.files.items()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / fname).write_text(text)
    wfs, nodes = _node_index(text)
    edges: dict[str, set[tuple[str, str]]] = {w: set() for w in wfs.values()}
    if target == "make":
        # The Makefile's own prerequisites (node targets → node keys through their recipes).
        target_key = dict(re.findall(r"^([^\s:]+): cicompile-init.*\n\t@\$\(CICOMPILE_CALL\)"
                                     r" node (\S+)$", text, re.M))
        for tgt, key in target_key.items():
            prereq = re.search(rf"^{re.escape(tgt)}: cicompile-init(.*)$", text, re.M)
            assert prereq
            wid, _, name, _ = nodes[key]
            # `$(call cicompile_needs,N,M:TARGET ...)`: the needs that exist in the run.
            needs = re.fullmatch(r" \$\(call cicompile_needs,\d+,(.*)\)|", prereq.group(1))
            assert needs, prereq.group(0)
            for p in (needs.group(1) or "").split():
                edges[wfs[wid]].add((nodes[target_key[p.split(":")[1]]][2], name))
    else:
        for wid, _, name, needs in nodes.values():
            for need in needs:
                edges[wfs[wid]].add((nodes[need.split(":")[0]][2], name))
    by_id = {(wid, node_id): name for wid, node_id, name, _ in nodes.values()}
    layers: dict[str, dict[str, list[tuple[str, int]]]] = {w: {} for w in wfs.values()}
    # Without the commands' heredocs, which may hold a `}` line of their own.
    code = re.sub(r"<<'(\w+)'\n.*?^\1$", "", text.replace("$$", "$"), flags=re.M | re.S)
    for key, body in re.findall(r"^cc_job_(\w+)\(\) \{\n(.*?)^\}$", code, re.M | re.S):
        if key not in nodes:  # a function of the runtime (cc_job_setup)
            continue
        wid, _, name, _ = nodes[key]
        for line in re.findall(r"^\s*cc_attach (.*)$", body, re.M):
            for layer in shlex.split(line)[1:]:
                owner, index = re.sub(r"@\d+$", "", layer).rsplit("-", 1)
                entry = (by_id[(wid, owner)], int(index))
                if entry not in layers[wfs[wid]].setdefault(name, []):
                    layers[wfs[wid]][name].append(entry)
    exists = dict(zip(evs, _local_runs(target, fname, text, wfs, nodes, evs, workdir),
                      strict=True))
    # Both decide every node's existence before scheduling (tests/test_ordering.py runs it).
    return TargetView(exists, edges, absent_order_nothing=True, layers=layers)


# ---- comparison ---------------------------------------------------------------------------

def layer_mismatches(exp: Expectation, view: TargetView, target: str) -> list[str]:
    """Workspace layers each attaching job reads: those of its upstream jobs (the reference),
    each once, an upstream job's before a downstream one's."""
    out = []
    for wf, got in view.layers.items():
        if wf in exp.excluded:
            continue
        want = workspace_layers(exp.config, wf)
        upstream = ordering(exp.config, wf, set(workflow_entries(exp.config)[wf]))
        for job in sorted(set(want) | set(got)):
            have = got.get(job, [])
            if set(have) != want.get(job, set()) or len(have) != len(set(have)):
                out.append(f"{target} workflow {wf}: {job} attaches {have}, want"
                           f" {sorted(want.get(job, set()))}")
            elif any((b, a) in upstream for i, (a, _) in enumerate(have)
                     for b, _ in have[i + 1:]):
                out.append(f"{target} workflow {wf}: {job} attaches layers out of order {have}")
    return out


def mismatches(exp: Expectation, view: TargetView, target: str) -> list[str]:
    """Differences between a target and the reference, one line each (empty: they agree)."""
    out = layer_mismatches(exp, view, target)
    for ev in exp.target_events(target):
        ref = exp.want(ev, target)
        got = view.exists[ev]
        label = f"{target} {' '.join(parts(ev))}"
        for wf in sorted(set(ref) | set(got)):
            if wf in exp.excluded:
                continue
            want, have = ref.get(wf, set()), got.get(wf, set())
            if view.github_waits is not None:
                want = want - github_idle_approvals(exp.config, wf, want)
            if want != have:
                out.append(f"{label} workflow {wf}: missing"
                           f" {sorted(want - have)}, extra {sorted(have - want)}")
                continue
            if not want:
                continue
            ref_order = ordering(exp.config, wf, want)
            edges = view.edges.get(wf, set())
            if view.absent_order_nothing:
                edges = {(a, b) for a, b in edges if a in want and b in want}
            closure = transitive_closure(edges)
            got_order = {(a, b) for a, b in closure if a in want and b in want}
            if view.github_waits is not None:
                # After an ordinary job: a delay only. After an approval: warned, or wrong.
                entries = workflow_entries(exp.config)[wf]
                got_order = ref_order | {
                    (a, b) for a, b in got_order - ref_order
                    if entries[a].get("type") == "approval"
                    and (wf, a, b) not in view.github_waits}
            if got_order != ref_order:
                out.append(f"{label} workflow {wf}: ordering missing"
                           f" {sorted(ref_order - got_order)[:5]}, extra"
                           f" {sorted(got_order - ref_order)[:5]}")
    return out

