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


def filters_pass(f: dict[str, Any] | None, branch: str, tag: str) -> bool:
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


def existing_jobs(config: dict[str, Any], branch: str = "", tag: str = "") -> dict[str, set[str]]:
    """{workflow: names of the job invocations that exist in a pipeline for this ref}."""
    out: dict[str, set[str]] = {}
    for wf_name, wf in (config.get("workflows") or {}).items():
        if wf_name == "version":
            continue
        entries: dict[str, dict[str, Any]] = {}
        for e in wf["jobs"]:
            if isinstance(e, str):
                entries[e] = {}
            else:
                (name, body), = e.items()
                entries[name] = body or {}
        memo: dict[str, bool] = {}

        def exists(
            j: str, entries: dict[str, dict[str, Any]] = entries, memo: dict[str, bool] = memo
        ) -> bool:
            if j not in memo:
                body = entries[j]
                reqs = _as_list(body.get("requires"))
                memo[j] = filters_pass(body.get("filters"), branch, tag) and (
                    not reqs or any(exists(r) for r in reqs)
                )
            return memo[j]

        out[wf_name] = {j for j in entries if exists(j)}
    return out
