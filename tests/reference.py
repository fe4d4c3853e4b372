"""A reference evaluator of "which jobs run", written straight from circleci-semantics.md §5.3–5.4.

Deliberately independent of the compiler: it reads the raw config with yaml.safe_load and shares
no code with the front end, the passes or the condition algebra.
"""

from __future__ import annotations

import re
from typing import Any


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in (v if isinstance(v, list) else [v])]


def _m(spec: str, name: str) -> bool:
    if len(spec) >= 2 and spec.startswith("/") and spec.endswith("/"):
        return re.fullmatch(spec[1:-1], name) is not None
    return spec == name


# ---- pipeline values, logic statements (§5.6) and expressions (§5.5) ----------------------


# What started the pipeline, by `pipeline.trigger_source` (§5.7, §5.8): its successor
# `pipeline.trigger.type` (a push's is its integration, `webhook` for these pipelines) and the
# event's name.
_TRIGGER_TYPE = {"webhook": "webhook", "api": "api", "scheduled_pipeline": "schedule"}
_EVENT_NAME = {"webhook": "push", "api": "api", "scheduled_pipeline": "schedule"}


def pipeline_values(branch: str, tag: str, source: str = "webhook",
                    schedule: str = "") -> dict[str, Any]:
    """The run-time pipeline values a condition may read; the absent one of branch and tag
    is null (§5.8: empty/null for tags), as is the schedule's name on a pipeline no schedule
    trigger started."""
    return {"pipeline.git.branch": branch or None, "pipeline.git.tag": tag or None,
            "pipeline.trigger_source": source, "pipeline.trigger.type": _TRIGGER_TYPE[source],
            "pipeline.event.name": _EVENT_NAME[source],
            "pipeline.schedule.name": schedule if source == "scheduled_pipeline" and schedule
            else None}


_VALUE_REF = re.compile(r"<<\s*(pipeline\.[\w.-]+)\s*>>")


def _truthy(v: Any) -> bool:
    if v is None or isinstance(v, bool):
        return bool(v)
    if isinstance(v, int | float):
        return v == v and v != 0
    if isinstance(v, list | dict):
        return bool(v)
    return v != ""


def _logic_arg(v: Any, values: dict[str, Any]) -> Any:
    """`<< pipeline.x >>` inside a statement is replaced by the value's text ("" for null)."""
    if not isinstance(v, str) or "<<" not in v:
        return v
    return _VALUE_REF.sub(lambda m: str(values.get(m.group(1)) or ""), v)


def logic(stmt: Any, values: dict[str, Any]) -> bool:
    """A logic statement (§5.6) under the given pipeline values."""
    if isinstance(stmt, dict) and len(stmt) == 1:
        (op, arg), = stmt.items()
        if op == "and":
            return all(logic(a, values) for a in arg)
        if op == "or":
            return any(logic(a, values) for a in arg)
        if op == "not":
            return not logic(arg, values)
        if op == "equal":
            args = [_logic_arg(a, values) for a in arg]
            return all(type(a) is type(args[0]) and a == args[0] for a in args[1:])
        if op == "matches":
            value = _logic_arg(arg["value"], values)
            return re.fullmatch(str(arg["pattern"]), str(value)) is not None
    return _truthy(_logic_arg(stmt, values))


_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')|(?P<num>-?\d+(?:\.\d+)?)
    |(?P<re>/(?:\\.|[^/\\])*/)|(?P<op>==|!=|<=|>=|<|>|\(|\))
    |(?P<word>[A-Za-z][\w.-]*))""", re.X)


def expression(text: str, values: dict[str, Any]) -> Any:
    """Evaluate an expression (§5.5): `and`/`or` yield operand values, `not` binds tightest,
    comparisons of different types are unequal."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        assert m, f"bad expression at {text[pos:]!r}"
        kind = m.lastgroup
        assert kind is not None
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    at = [0]

    def peek() -> tuple[str, str] | None:
        return tokens[at[0]] if at[0] < len(tokens) else None

    def take() -> tuple[str, str]:
        at[0] += 1
        return tokens[at[0] - 1]

    def atom() -> Any:
        kind, tok = take()
        if kind == "word" and tok == "not":
            return not _truthy(atom())
        if tok == "(":
            v = disj()
            assert take()[1] == ")"
            return v
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", tok[1:-1])
        if kind == "num":
            return float(tok) if "." in tok else int(tok)
        if tok in ("true", "false"):
            return tok == "true"
        return values.get(tok)  # a value this evaluator does not model: null

    def comparison() -> Any:
        left = atom()
        nxt = peek()
        if nxt is None:
            return left
        if nxt[1] in ("==", "!="):
            take()
            right = atom()
            same = type(left) is type(right) and left == right
            return same if nxt[1] == "==" else not same
        if nxt[1] in ("<", "<=", ">", ">="):
            take()
            right = atom()
            return {"<": left < right, "<=": left <= right, ">": left > right,
                    ">=": left >= right}[nxt[1]]
        if nxt[1] == "starts-with":
            take()
            right = atom()
            return isinstance(left, str) and left.startswith(right)
        if nxt[1] == "matches":
            take()
            rx = take()[1][1:-1].replace("\\/", "/")
            return isinstance(left, str) and re.fullmatch(rx, left) is not None
        return left

    def conj() -> Any:
        v = comparison()
        while peek() == ("word", "and"):
            take()
            right = comparison()
            v = right if _truthy(v) else v
        return v

    def disj() -> Any:
        v = conj()
        while peek() == ("word", "or"):
            take()
            right = conj()
            v = v if _truthy(v) else right
        return v

    result = disj()
    assert at[0] == len(tokens), f"trailing tokens in {text!r}"
    return result


def _condition(wf: dict[str, Any]) -> tuple[Any, bool] | None:
    for key, want in (("when", True), ("unless", False)):
        if key in wf:
            return wf[key], want
    return None


def workflow_runs(wf: dict[str, Any], values: dict[str, Any]) -> bool:
    """Workflow `when`/`unless` (§5.1): a logic statement or an expression string."""
    found = _condition(wf)
    if found is None:
        return True
    cond, want = found
    if isinstance(cond, str) and "pipeline." in cond and "<<" not in cond:
        return _truthy(expression(cond, values)) == want
    return logic(cond, values) == want


def reads_trigger_source(wf: dict[str, Any]) -> bool:
    """A workflow whose condition (or a job's expression filter) reads what started the
    pipeline (`pipeline.trigger_source`, `.trigger.type`, `.event.name`, `.schedule.name`)
    is meant for schedule triggers (project settings), which start
    ordinary pipelines: it is evaluated on push and on scheduled runs alike, with the source
    of each."""
    found = _condition(wf)
    filters = [next(iter(e.values())).get("filters") for e in wf.get("jobs") or []
               if isinstance(e, dict) and isinstance(next(iter(e.values())), dict)]
    text = repr((found, filters))
    return any(f"pipeline.{name}" in text for name in (
        "trigger_source", "trigger.type", "event.name", "schedule.name"))


def filters_pass(f: dict[str, Any] | str | None, branch: str, tag: str,
                 source: str = "webhook", schedule: str = "") -> bool:
    if isinstance(f, str):  # an expression filter (§5.5)
        return _truthy(expression(f, pipeline_values(branch, tag, source, schedule)))
    f = f or {}
    if tag:
        t = f.get("tags")
        if t is None:
            return False
        if "only" in t and not any(_m(s, tag) for s in _as_list(t["only"])):
            return False
        if "ignore" in t and any(_m(s, tag) for s in _as_list(t["ignore"])):
            return False
        return "only" in t or "ignore" in t
    b = f.get("branches")
    if b is None:
        return True
    if "only" in b and not any(_m(s, branch) for s in _as_list(b["only"])):
        return False
    if "ignore" in b and any(_m(s, branch) for s in _as_list(b["ignore"])):
        return False
    return True


def workflow_entries(config: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """{workflow: {invocation name: entry body}}, in source order (semantics §5.1–5.3).

    An entry's name is its `name`, else its job; a name used twice is numbered `-1`, `-2`
    (as CircleCI does). No `workflows` but a job `build`: CircleCI runs that job alone.
    """
    wfs = config.get("workflows")
    if not isinstance(wfs, dict):
        return {"workflow": {"build": {}}} if "build" in (config.get("jobs") or {}) else {}
    return {wf: {name: body for name, (_, body) in entries.items()}
            for wf, entries in _entries(config).items()}


def entry_jobs(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    """{workflow: {invocation name: the job it runs}} (approvals name no defined job)."""
    return {wf: {name: job for name, (job, _) in entries.items()}
            for wf, entries in _entries(config).items()}


def _entries(config: dict[str, Any]) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    wfs = config.get("workflows")
    if not isinstance(wfs, dict):
        return {"workflow": {"build": ("build", {})}} if "build" in (config.get("jobs") or {}) \
            else {}
    out: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
    for wf_name, wf in wfs.items():
        if wf_name == "version" or not isinstance(wf, dict):
            continue
        named: list[tuple[str, str, dict[str, Any]]] = []
        for e in wf.get("jobs") or []:
            if isinstance(e, str):
                named.append((e, e, {}))
            else:
                (job, body), = e.items()
                body = body or {}
                named.append((str(body.get("name") or job), str(job), body))
        counts: dict[str, int] = {}
        for name, _, _ in named:
            counts[name] = counts.get(name, 0) + 1
        seen: dict[str, int] = {}
        entries: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, job, body in named:
            if counts[name] > 1:
                seen[name] = seen.get(name, 0) + 1
                name = f"{name}-{seen[name]}"
            entries[name] = (job, body)
        out[str(wf_name)] = entries
    return out


def _steps_named(config: dict[str, Any], job: str, step: str) -> int:
    job_def = (config.get("jobs") or {}).get(job)
    steps = job_def.get("steps") if isinstance(job_def, dict) else None
    return sum(1 for s in steps or [] if isinstance(s, dict) and step in s)


def workspace_layers(config: dict[str, Any], workflow: str) -> dict[str, set[tuple[str, int]]]:
    """{invocation that attaches the workspace: the layers (persisting job, index of its
    `persist_to_workspace` step) it sees}: those of all its upstream jobs, transitively
    through `requires` (§3.11); never a sibling's or a descendant's."""
    entries = workflow_entries(config)[workflow]
    # An approval runs no job, even one named like a defined job.
    jobs = {j: job for j, job in entry_jobs(config)[workflow].items()
            if entries[j].get("type") != "approval"}
    upstream = transitive_closure({(r, j) for j, body in entries.items()
                                   for r in requirements(body) if r in entries})
    out: dict[str, set[tuple[str, int]]] = {}
    for j, job in jobs.items():
        if _steps_named(config, job, "attach_workspace"):
            out[j] = {(a, i) for a, b in upstream if b == j and a in jobs
                      for i in range(_steps_named(config, jobs[a], "persist_to_workspace"))}
    return out


def requirements(body: dict[str, Any]) -> list[str]:
    """`requires` names (plain, or the keys of `{name: status}` items)."""
    out: list[str] = []
    reqs = body.get("requires")
    for r in reqs if isinstance(reqs, list) else [] if reqs is None else [reqs]:
        out.extend(str(k) for k in r) if isinstance(r, dict) else out.append(str(r))
    return out


def schedule_fires(triggers: Any, branch: str, tag: str) -> bool:
    """Whether one of a workflow's schedules runs it for this ref (§5.7): schedules are
    registered per branch, for the branches their `filters.branches` admits; never on tags."""
    if tag:
        return False
    for t in triggers if isinstance(triggers, list) else []:
        sched = t.get("schedule") if isinstance(t, dict) else None
        if isinstance(sched, dict):
            branches = (sched.get("filters") or {}).get("branches")
            if filters_pass({"branches": branches} if branches else {}, branch, ""):
                return True
    return False


def existing_jobs(config: dict[str, Any], branch: str = "", tag: str = "",
                  trigger: str = "push", schedule: str = "") -> dict[str, set[str]]:
    """{workflow: names of the job invocations that exist in a pipeline for this ref}.

    `trigger` is `push` (also an API or UI-triggered pipeline) or `schedule`: a workflow with
    schedule `triggers` runs only on its schedule (§5.7), and on a scheduled run only it and
    the workflows whose condition reads the trigger (a scheduled pipeline of the newer schedule
    triggers, `pipeline.trigger_source` = `scheduled_pipeline`) run; in a config without
    `triggers`, a scheduled run is such a scheduled pipeline: every workflow runs (§5.7: "all
    workflows without a `when` condition run"), `when` deciding; `schedule` is the name of
    that schedule trigger (`pipeline.schedule.name`).
    """
    out: dict[str, set[str]] = {}
    wfs = config.get("workflows")
    wfs = wfs if isinstance(wfs, dict) else {}
    source = "scheduled_pipeline" if trigger == "schedule" else "webhook"
    # Without any schedule `triggers`, a scheduled run can only be a scheduled pipeline of the
    # schedule triggers, which runs every workflow (their conditions decide).
    legacy = any(isinstance(w, dict) and w.get("triggers") for w in wfs.values())
    for wf_name, entries in workflow_entries(config).items():
        triggers = (wfs.get(wf_name) or {}).get("triggers")
        runs = schedule_fires(triggers, branch, tag) if trigger == "schedule" else not triggers
        wf_body = wfs.get(wf_name) or {}
        if not triggers and (reads_trigger_source(wf_body) or not legacy):
            runs = True
        if runs and not workflow_runs(wf_body, pipeline_values(branch, tag, source, schedule)):
            runs = False
        if not runs:
            out[wf_name] = set()
            continue
        memo: dict[str, bool] = {}

        def exists(
            j: str, entries: dict[str, dict[str, Any]] = entries, memo: dict[str, bool] = memo
        ) -> bool:
            if j not in memo:
                body = entries[j]
                reqs = requirements(body)
                memo[j] = filters_pass(body.get("filters"), branch, tag, source, schedule) and (
                    not reqs or any(exists(r) for r in reqs)
                )
            return memo[j]

        out[wf_name] = {j for j in entries if exists(j)}
    return out


def ordering(config: dict[str, Any], workflow: str, existing: set[str]) -> set[tuple[str, str]]:
    """(before, after) pairs CircleCI orders among the existing jobs: the transitive closure of
    `requires` edges between existing jobs (a filtered-out requirement is dropped, §5.3)."""
    entries = workflow_entries(config)[workflow]
    edges = {(r, j) for j, body in entries.items() if j in existing
             for r in requirements(body) if r in existing}
    return transitive_closure(edges)


def transitive_closure(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    succ: dict[str, set[str]] = {}
    for a, b in edges:
        succ.setdefault(a, set()).add(b)
    out: set[tuple[str, str]] = set()
    for start in list(succ):
        stack, seen = list(succ[start]), set()
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(succ.get(n, ()))
        out.update((start, n) for n in seen)
    return out


def expanded_config(text: str, path: str = "config.yml") -> dict[str, Any]:
    """The config as plain data, 2.1 configs expanded (parameters, matrices, names...).

    Reading YAML the way CircleCI does (redefined anchors, merge keys) and expanding 2.1 are
    borrowed from the front end; only the tree is used: which jobs exist is decided here.
    """
    from cicompile.diagnostics import Diagnostics
    from cicompile.frontend.expand import expand_config
    from cicompile.frontend.yaml_loader import YMap, YNode, YSeq, load_yaml

    def plain(n: YNode) -> Any:
        if isinstance(n, YMap):
            return {k.as_str(): plain(v) for k, v in n.pairs}
        if isinstance(n, YSeq):
            return [plain(x) for x in n.items]
        if isinstance(n.value, bool):
            return n.value  # a condition's `false` must stay falsy
        return None if n.value is None and not n.quoted else n.text

    diags = Diagnostics()
    root = load_yaml(text, path, diags)
    assert isinstance(root, YMap), diags.sorted()
    version = root.get("version")
    if version is not None and plain(version) == "2.1":
        root = expand_config(root, diags)
    return plain(root)  # type: ignore[no-any-return]


# ---- flexible requires (§5.3): which existing jobs start, given which of them fail ----------

STATUSES = ("success", "failed", "canceled", "unauthorized", "not_run")


def accepted_statuses(body: dict[str, Any]) -> dict[str, set[str]]:
    """{requirement: the statuses it may end in for this entry to start}: a plain name means
    `success`; `{name: status}` or `{name: [statuses]}`; `terminal` is any of the five."""
    out: dict[str, set[str]] = {}
    reqs = body.get("requires")
    for r in reqs if isinstance(reqs, list) else [] if reqs is None else [reqs]:
        items = r.items() if isinstance(r, dict) else [(r, "success")]
        for name, given in items:
            words = given if isinstance(given, list) else [given]
            statuses = {s for w in words for s in (STATUSES if w == "terminal" else (w,))}
            out.setdefault(str(name), set()).update(statuses)
    return out


def job_statuses(config: dict[str, Any], workflow: str, existing: set[str],
                 failing: set[str]) -> dict[str, str]:
    """{existing job: success | failed | not_run} when the jobs in `failing` fail if they run
    and every other job (approvals included) succeeds: a job starts when each existing
    requirement ended in a status it accepts (a requirement that does not exist is ignored),
    and otherwise is not_run."""
    entries = workflow_entries(config)[workflow]
    memo: dict[str, str] = {}

    def status(j: str) -> str:
        if j not in memo:
            starts = all(status(r) in accepted
                         for r, accepted in accepted_statuses(entries[j]).items()
                         if r in existing)
            memo[j] = ("failed" if j in failing else "success") if starts else "not_run"
        return memo[j]

    return {j: status(j) for j in existing}
