"""Run-time workflow conditions (`when`/`unless`, expression filters) on every target, against
the reference evaluator (tests/reference.py, written from semantics §5.1, §5.5, §5.6).

For the golden cases with run-time conditions, and for each event (a push of a branch or a
tag, or a scheduled pipeline on a branch), the jobs that exist must be the reference's:

- GitHub: the workflow's `on:` and the gate job's bash, run with the event's
  GITHUB_EVENT_NAME / GITHUB_REF_*. A scheduled pipeline is the `schedule` event of the cron
  that `--schedule` declares (a schedule trigger of CircleCI's project settings);
- make / shell: the generated files run with CICOMPILE_DRY_RUN=1 (and CICOMPILE_TRIGGER);
- GitLab: gitlab-ci-local's rule evaluation (`--list-json`) with CI_PIPELINE_SOURCE.

Workflows warned `runtime-condition` (a value no target can test) are not compared.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from cicompile import Result, compile_config
from cicompile.ir import Pipeline
from cicompile.targets.gitlab import gitlab_job_names

from tests.golden_cases import GOLDEN
from tests.reference import existing_jobs, expanded_config
from tests.tools import require_tool

CASES = ["v21-runtime-when", "v21-expressions"]
# (trigger, ref kind, ref name); trigger is push or schedule (a scheduled pipeline).
Event = tuple[str, str, str]
EVENTS: list[Event] = [
    ("push", "branch", "main"), ("push", "branch", "feature/x"),
    ("push", "branch", "release/1.2"), ("push", "branch", "dependabot/npm"),
    ("push", "branch", "gh-pages"), ("push", "tag", "v1.2.3"), ("push", "tag", "v2.0-rc1"),
    ("push", "tag", "nightly"), ("schedule", "branch", "main"),
    ("schedule", "branch", "feature/x"), ("schedule", "tag", "v1.2.3"),
]
Exists = dict[Event, dict[str, set[str]]]


def _config(case: str) -> tuple[str, Result]:
    text = (GOLDEN / case / "input.yml").read_text()
    return text, compile_config(text, "github", path="input.yml")


def _excluded(result: Result) -> set[str]:
    out = set()
    for d in result.diagnostics:
        m = re.match(r"workflow '(.*?)': `(when|unless)` depends on", d.message)
        if d.code == "runtime-condition" and m:
            out.add(m.group(1))
    return out


def _expected(text: str) -> Exists:
    config = expanded_config(text, "input.yml")
    out: Exists = {}
    for ev in EVENTS:
        trigger, kind, name = ev
        branch, tag = (name, "") if kind == "branch" else ("", name)
        out[ev] = existing_jobs(config, branch, tag, trigger)
    return out


def _compare(want: Exists, got: Exists, excluded: set[str], target: str) -> list[str]:
    problems = []
    for ev in EVENTS:
        for wf in sorted(set(want[ev]) | set(got[ev])):
            if wf in excluded:
                continue
            w, g = want[ev].get(wf, set()), got[ev].get(wf, set())
            if w != g:
                problems.append(f"{target} {ev} {wf}: missing {sorted(w - g)}, extra"
                                f" {sorted(g - w)}")
    return problems


# ---- GitHub -----------------------------------------------------------------------------


def _gate(script: str, ev: Event, tmp: Path) -> set[str]:
    trigger, kind, name = ev
    out = tmp / "github_output"
    out.write_text("")
    env = {**os.environ, "GITHUB_EVENT_NAME": trigger, "GITHUB_REF_TYPE": kind,
           "GITHUB_REF_NAME": name, "GITHUB_OUTPUT": str(out)}
    subprocess.run(["bash", "-c", script], env=env, capture_output=True, check=True)
    return {line.rsplit("=", 1)[0] for line in out.read_text().splitlines()
            if line.endswith("=true")}


def _github(text: str, tmp: Path) -> Exists:
    result = compile_config(text, "github", path="input.yml",
                            schedules=(("nightly", "0 2 * * *"),))
    assert result.ok, result.diagnostics
    got: Exists = {ev: {} for ev in EVENTS}
    for body in result.files.values():
        doc = yaml.safe_load(body)
        wf = re.search(r"^# CircleCI workflow: (.*)$", body, re.M)
        assert wf
        on = doc.get("on", doc.get(True))
        names = {jid: str(j.get("name", jid)) for jid, j in doc["jobs"].items()
                 if jid != "circleci-gate"}
        gate = doc["jobs"].get("circleci-gate")
        for ev in EVENTS:
            trigger, kind, _ = ev
            push = on.get("push") or {}
            if trigger == "schedule":
                triggered = "schedule" in on
            else:
                triggered = "tags" in push if kind == "tag" else "branches" in push
            ids = set(names) if gate is None else _gate(gate["steps"][0]["run"], ev, tmp)
            got[ev][wf.group(1)] = {names[i] for i in ids if i in names} if triggered else set()
    return got


# ---- make / shell -----------------------------------------------------------------------


def _local(text: str, target: str, workdir: Path) -> Exists:
    result = compile_config(text, target, path="input.yml")
    assert result.ok, result.diagnostics
    (fname, script), = result.files.items()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / fname).write_text(script)
    plain = script.replace("$$", "$")
    wf_names = {}
    for line in re.findall(r"^cc_workflow (.*)$", plain, re.M):
        wid, wname, *_ = shlex.split(line)
        wf_names[wid] = wname
    nodes = []
    for line in re.findall(r"^cc_node (.*)$", plain, re.M):
        _key, wid, node_id, _kind, nname, *_ = shlex.split(line)
        nodes.append((wid, nname, node_id))
    got: Exists = {}
    for ev in EVENTS:
        trigger, kind, name = ev
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "MAKE"))}
        env.update(CICOMPILE_DRY_RUN="1", CI="true", CICOMPILE_TRIGGER=trigger,
                   **({"CIRCLE_BRANCH": name} if kind == "branch" else {"CIRCLE_TAG": name}))
        cmd = ["make", "-s", "-f", fname] if target == "make" else ["bash", fname]
        r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                           timeout=300, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        per: dict[str, set[str]] = {w: set() for w in wf_names.values()}
        for wid, nname, node_id in nodes:
            status_file = workdir / ".cicompile-run" / "status" / wid / node_id
            if status_file.read_text().strip() == "success":
                per[wf_names[wid]].add(nname)
        got[ev] = per
    return got


# ---- GitLab -----------------------------------------------------------------------------


def _gitlab(text: str, repo: Path) -> Exists:
    from tests.gitlab_helpers import make_repo, require_gcl

    gcl = require_gcl()
    result = compile_config(text, "gitlab", path="input.yml")
    assert result.ok and isinstance(result.pipeline, Pipeline), result.diagnostics
    back = {gl: wf_node for wf_node, gl in gitlab_job_names(result.pipeline).items()}
    make_repo(repo, result.files[".gitlab-ci.yml"])
    env = {**os.environ,
           "GCL_IGNORE_PREDEFINED_VARS": "CI_COMMIT_BRANCH,CI_COMMIT_TAG,CI_PIPELINE_SOURCE"}
    got: Exists = {}
    for ev in EVENTS:
        trigger, kind, name = ev
        args = ["--variable", f"CI_PIPELINE_SOURCE={trigger}"]
        args += (["--variable", f"CI_COMMIT_BRANCH={name}"] if kind == "branch" else
                 ["--variable", "CI_COMMIT_BRANCH=", "--variable", f"CI_COMMIT_TAG={name}"])
        r = subprocess.run([str(gcl), "--list-json", "--no-json-schema-validation", *args],
                           cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        per: dict[str, set[str]] = {}
        for job in json.loads(r.stdout[r.stdout.index("["):]):
            if job["when"] != "never":
                wf, node = back[re.sub(r":? \[\d+/\d+\]$", "", job["name"])]
                per.setdefault(wf, set()).add(node)
        got[ev] = per
    return got


# ---- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_github_gate_agrees_with_reference(case: str, tmp_path: Path) -> None:
    text, result = _config(case)
    got = _github(text, tmp_path)
    assert _compare(_expected(text), got, _excluded(result), "github") == []


@pytest.mark.parametrize("target", ["make", "shell"])
@pytest.mark.parametrize("case", CASES)
def test_local_targets_agree_with_reference(case: str, target: str, tmp_path: Path) -> None:
    require_tool("make")
    text, result = _config(case)
    got = _local(text, target, tmp_path / "run")
    assert _compare(_expected(text), got, _excluded(result), target) == []


@pytest.mark.parametrize("case", CASES)
def test_gitlab_rules_agree_with_reference(case: str, tmp_path: Path) -> None:
    text, result = _config(case)
    got = _gitlab(text, tmp_path / "repo")
    assert _compare(_expected(text), got, _excluded(result), "gitlab") == []


def test_the_cases_exercise_every_kind_of_condition() -> None:
    """The comparison is not vacuous: the cases' workflows differ between events."""
    seen = set()
    for case in CASES:
        text, _ = _config(case)
        want = _expected(text)
        for wf in want[EVENTS[0]]:
            seen.add(frozenset(ev for ev in EVENTS if want[ev].get(wf)))
    assert len(seen) >= 6
