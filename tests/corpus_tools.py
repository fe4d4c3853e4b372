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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cicompile import Result, compile_config
from cicompile.ir import Pipeline
from cicompile.targets.gitlab import gitlab_job_names

from tests.gha_runner import gate_outputs
from tests.golden_cases import case_dirs
from tests.reference import existing_jobs, expanded_config, ordering, transitive_closure
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
Event = Ref


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


def events(config: dict[str, Any]) -> list[Event]:
    """push to main, feature/x, a branch matching each regex branch filter, tags."""
    out = list(BASE_EVENTS)
    specs: set[str] = set()
    for wf in (config.get("workflows") or {}).values():
        for e in (wf.get("jobs") or []) if isinstance(wf, dict) else []:
            body = next(iter(e.values())) if isinstance(e, dict) else None
            filters = (body or {}).get("filters")  # a string is an expression filter
            branches = (filters.get("branches") or {}) if isinstance(filters, dict) else {}
            for key in ("only", "ignore"):
                v = branches.get(key)
                for s in v if isinstance(v, list) else [v] if v else []:
                    if len(s) > 2 and s.startswith("/") and s.endswith("/"):
                        specs.add(s[1:-1])
    for regex in sorted(specs):
        name = _matching_name(regex)
        if name and ("branch", name) not in out:
            out.append(("branch", name))
    return out


# ---- what the reference says ------------------------------------------------------------

@dataclass
class Expectation:
    config: dict[str, Any]
    events: list[Event]
    exists: dict[Event, dict[str, set[str]]]  # event → workflow → jobs
    excluded: dict[str, str]  # workflow → why it is not compared (a warned approximation)


def expectation(path: Path, result: Result) -> Expectation:
    config = expanded_config(path.read_text(), config_id(path))
    evs = events(config)
    exists = {}
    for kind, name in evs:
        exists[(kind, name)] = existing_jobs(config, *((name, "") if kind == "branch"
                                                       else ("", name)))
    excluded = {}
    for wf_name, wf in (config.get("workflows") or {}).items():
        if isinstance(wf, dict) and wf.get("triggers"):
            excluded[wf_name] = "schedule `triggers` (unsupported-feature: runs on every push)"
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
    # GitLab drops absent jobs from the pipeline: their edges order nothing.
    absent_order_nothing: bool = False


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


def github_view(result: Result, evs: list[Event]) -> TargetView:
    exists: dict[Event, dict[str, set[str]]] = {e: {} for e in evs}
    edges: dict[str, set[tuple[str, str]]] = {}
    for text in result.files.values():
        doc = yaml.safe_load(text)
        wf = re.search(r"^# CircleCI workflow: (.*)$", text, re.M)
        assert wf, text[:300]
        wf_name = wf.group(1)
        on = doc.get("on", doc.get(True))
        push = on.get("push") if isinstance(on, dict) else None
        names = {jid: str(j.get("name", jid)) for jid, j in doc["jobs"].items()
                 if jid != "circleci-gate"}
        edges[wf_name] = set()
        for jid, j in doc["jobs"].items():
            needs = j.get("needs") or []
            for n in [needs] if isinstance(needs, str) else needs:
                if n != "circleci-gate" and jid != "circleci-gate":
                    edges[wf_name].add((names[n], names[jid]))
        gate = doc["jobs"].get("circleci-gate")
        outputs: dict[Event, set[str]] = {}
        if gate is None:
            outputs = {e: set(names) for e in evs}
        else:
            outputs = gate_outputs(gate["steps"][0]["run"], list(evs))
        for e in evs:
            triggered = _push_triggers(push, *e)
            exists[e][wf_name] = {names[j] for j in outputs[e] if j in names} if triggered \
                else set()
    return TargetView(exists, edges)


# ---- GitLab (gitlab-ci-local) -----------------------------------------------------------

def gitlab_view(result: Result, evs: list[Event], repo: Path) -> TargetView:
    from tests.gitlab_helpers import make_repo, require_gcl

    assert isinstance(result.pipeline, Pipeline)
    names = gitlab_job_names(result.pipeline)
    back = {gl: wf_node for wf_node, gl in names.items()}
    make_repo(repo, result.files[".gitlab-ci.yml"])
    exists: dict[Event, dict[str, set[str]]] = {}
    edges: dict[str, set[tuple[str, str]]] = {wf: set() for wf in wf_names(result)}
    for kind, name in evs:
        args = (["--variable", f"CI_COMMIT_BRANCH={name}"] if kind == "branch" else
                ["--variable", "CI_COMMIT_BRANCH=", "--variable", f"CI_COMMIT_TAG={name}"])
        # To a file: through a pipe, gitlab-ci-local's output stops at 128 KiB.
        env = {**os.environ,
               "GCL_IGNORE_PREDEFINED_VARS": "CI_COMMIT_BRANCH,CI_COMMIT_TAG,CI_PIPELINE_SOURCE"}
        with (repo.parent / f"{repo.name}.json").open("w+") as f:
            rc = subprocess.run([str(require_gcl()), "--list-json", "--no-json-schema-validation",
                                 *args], cwd=repo, env=env, stdout=f,
                                stderr=subprocess.DEVNULL, timeout=300).returncode
            f.seek(0)
            listing = f.read()
        assert rc == 0, listing[-3000:]
        jobs = json.loads(listing[listing.index("["):])
        per: dict[str, set[str]] = {wf: set() for wf in wf_names(result)}
        for j in jobs:
            if j["when"] == "never":
                continue
            # A parallel job is listed once per node: `name: [1/2]`.
            wf, node = back[re.sub(r":? \[\d+/\d+\]$", "", j["name"])]
            per[wf].add(node)
            for need in j.get("needs") or []:
                nwf, nnode = back[need["job"] if isinstance(need, dict) else need]
                assert nwf == wf
                edges[wf].add((nnode, node))
        exists[(kind, name)] = per
    return TargetView(exists, edges, absent_order_nothing=True)


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
            for p in prereq.group(1).split():
                edges[wfs[wid]].add((nodes[target_key[p]][2], name))
    else:
        for wid, _, name, needs in nodes.values():
            for need in needs:
                edges[wfs[wid]].add((nodes[need][2], name))
    exists: dict[Event, dict[str, set[str]]] = {}
    for kind, name in evs:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "MAKE"))}
        env.update(CICOMPILE_DRY_RUN="1", CI="true",
                   **({"CIRCLE_BRANCH": name} if kind == "branch" else {"CIRCLE_TAG": name}))
        cmd = ["make", "-s", "-j4", "-f", fname] if target == "make" else ["bash", fname]
        r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                           timeout=600, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        per: dict[str, set[str]] = {w: set() for w in wfs.values()}
        for wid, node_id, nname, _ in nodes.values():
            status = (workdir / ".cicompile-run" / "status" / wid / node_id).read_text().strip()
            assert status in ("success", "skipped"), (nname, status)
            if status == "success":
                per[wfs[wid]].add(nname)
        exists[(kind, name)] = per
    return TargetView(exists, edges)


# ---- comparison ---------------------------------------------------------------------------

def mismatches(exp: Expectation, view: TargetView, target: str) -> list[str]:
    """Differences between a target and the reference, one line each (empty: they agree)."""
    out = []
    for ev in exp.events:
        ref = exp.exists[ev]
        got = view.exists[ev]
        for wf in sorted(set(ref) | set(got)):
            if wf in exp.excluded:
                continue
            want, have = ref.get(wf, set()), got.get(wf, set())
            if want != have:
                out.append(f"{target} {ev[0]} {ev[1]} workflow {wf}: missing"
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
            if got_order != ref_order:
                out.append(f"{target} {ev[0]} {ev[1]} workflow {wf}: ordering missing"
                           f" {sorted(ref_order - got_order)[:5]}, extra"
                           f" {sorted(got_order - ref_order)[:5]}")
    return out

