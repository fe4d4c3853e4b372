"""A small GitHub Actions workflow runner for the tests (no Docker, no network).

There is no offline Actions runner (act needs Docker and a download), so this runs generated
workflows on the host the way GitHub would, for what cicompile emits: jobs in `needs` order,
job and step `if:` and every `${{ }}` evaluated by GitHub's own expression engine
(`@actions/expressions`, through .ci/validators/gha-eval-server.mjs), `run:` steps in
`bash --noprofile --norc -eo pipefail`, `$GITHUB_OUTPUT` / `$GITHUB_ENV`, job outputs, and the
three actions cicompile uses (checkout, upload-artifact, download-artifact) emulated on a
local artifact store. Each job gets a fresh workspace, HOME and RUNNER_TEMP. A job bound to an
`environment:` waits for approval unless the test approves it. Containers and services are
not started: steps run on the host.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.tools import VALIDATORS, node_script

EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


class Evaluator:
    def __init__(self) -> None:
        cmd = node_script("gha-eval-server.mjs")
        cmd[1] = str(VALIDATORS / "gha-eval-server.mjs")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def eval(self, expr: str, context: dict[str, Any], status: str = "success",
             if_: bool = False) -> tuple[Any, bool]:
        assert self.proc.stdin and self.proc.stdout
        req = {"expr": expr, "context": context, "status": status, "if": if_}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        if "error" in out:
            raise ValueError(f"expression {expr!r}: {out['error']}")
        return out["result"], bool(out["truthy"])

    def interpolate(self, text: str, context: dict[str, Any]) -> str:
        def one(m: re.Match[str]) -> str:
            value, _ = self.eval(m.group(1), context)
            if value is None:
                return ""
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, float) and value.is_integer():
                return str(int(value))
            return str(value)

        return EXPR.sub(one, text)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@dataclass
class JobRun:
    result: str  # success | failure | skipped | waiting
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""


def _topological(jobs: dict[str, Any]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(jobs):
        progressed = False
        for jid, job in jobs.items():
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            if jid not in done and all(n in done for n in needs):
                order.append(jid)
                done.add(jid)
                progressed = True
        assert progressed, "cycle in needs"
    return order


def _copy_into(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True, symlinks=True)
    else:
        shutil.copy2(src, dest / src.name)


def _read_env(env_file: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)


class WorkflowRunner:
    def __init__(self, workdir: Path, source: Path) -> None:
        self.workdir = workdir
        self.source = source
        self.artifacts = workdir / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.ev = Evaluator()
        self.workflow_env: dict[str, Any] = {}
        self.secrets: dict[str, str] = {}

    def close(self) -> None:
        self.ev.close()

    def run(self, workflow_file: Path, ref_type: str, ref_name: str,
            approve: frozenset[str] = frozenset(), event: str = "push",
            cron: str = "") -> dict[str, JobRun]:
        """Run the workflow for `event` (push, schedule, workflow_dispatch); {} when the
        workflow's `on:` does not list the event (GitHub would not start it). A schedule
        event fires `cron` (`github.event.schedule`), which `on.schedule` must list."""
        doc = yaml.safe_load(workflow_file.read_text())
        triggers = doc.get("on", doc.get(True)) or {}  # PyYAML reads a bare `on` as True
        if event not in triggers:
            return {}
        if event == "schedule" and cron and {"cron": cron} not in triggers["schedule"]:
            return {}
        jobs: dict[str, Any] = doc["jobs"]
        self.workflow_env = doc.get("env") or {}
        github = {
            "ref_type": ref_type, "ref_name": ref_name, "event_name": event,
            "ref": f"refs/{'heads' if ref_type == 'branch' else 'tags'}/{ref_name}",
            "sha": "0123456789abcdef0123456789abcdef01234567", "run_id": "4242",
            "run_number": "7", "run_attempt": "1", "repository": "example/project",
            "event": {"schedule": cron} if event == "schedule" else {},
        }
        results: dict[str, JobRun] = {}
        for jid in _topological(jobs):
            job = jobs[jid]
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            needs_ctx = {n: {"result": results[n].result, "outputs": results[n].outputs}
                         for n in needs}
            if any(results[n].result == "waiting" for n in needs):
                results[jid] = JobRun("waiting")
                continue
            all_ok = all(results[n].result == "success" for n in needs)
            ctx: dict[str, Any] = {"github": github, "needs": needs_ctx, "secrets": self.secrets}
            if "if" in job:
                _, go = self.ev.eval(str(job["if"]), ctx, "success" if all_ok else "failure",
                                     if_=True)
            else:
                go = all_ok
            if not go:
                results[jid] = JobRun("skipped")
                continue
            if "environment" in job and job["environment"] not in approve:
                results[jid] = JobRun("waiting")
                continue
            results[jid] = self.run_matrix(jid, job, ctx)
        return results

    def run_matrix(self, jid: str, job: dict[str, Any], ctx: dict[str, Any]) -> JobRun:
        """A job with `strategy.matrix` runs once per combination of its axes (no include or
        exclude: cicompile emits neither), with the `matrix` context set; like GitHub, the
        job's result is failure if any leg failed, and the legs' outputs are merged."""
        matrix = (job.get("strategy") or {}).get("matrix")
        if not matrix:
            return self.run_job(jid, job, {**ctx, "matrix": {}})
        axes = list(matrix.items())
        legs = [dict(zip([a for a, _ in axes], combo, strict=True))
                for combo in itertools.product(*[values for _, values in axes])]
        runs = [self.run_job(f"{jid}-{i}", job, {**ctx, "matrix": leg})
                for i, leg in enumerate(legs)]
        result = "success" if all(r.result == "success" for r in runs) else "failure"
        outputs = {k: v for r in runs for k, v in r.outputs.items() if v}
        log = "\n".join(f"=== leg {leg}\n{r.log}" for leg, r in zip(legs, runs, strict=True))
        return JobRun(result, outputs, log)

    def run_job(self, jid: str, job: dict[str, Any], ctx: dict[str, Any]) -> JobRun:
        base = self.workdir / "jobs" / jid
        shutil.rmtree(base, ignore_errors=True)
        ws, home, temp = base / "workspace", base / "home", base / "temp"
        for d in (ws, home, temp):
            d.mkdir(parents=True)
        ctx = {**ctx, "runner": {"temp": str(temp), "os": "Linux"},
               "github": {**ctx["github"], "workspace": str(ws)}, "steps": {}}
        env_file = base / "github_env"
        env_file.write_text("")
        path_file = base / "github_path"
        path_file.write_text("")
        job_env = {k: self.ev.interpolate(str(v), ctx)
                   for k, v in {**self.workflow_env, **(job.get("env") or {})}.items()}
        ctx["env"] = job_env
        default_shell = (job.get("defaults") or {}).get("run", {}).get("shell", "bash")
        status = "success"
        log: list[str] = []
        for i, step in enumerate(job.get("steps", [])):
            # $GITHUB_ENV's variables are in the `env` context of the later steps.
            ctx["env"] = {**job_env, **_read_env(env_file)}
            if "if" in step:
                _, go = self.ev.eval(str(step["if"]), ctx, status, if_=True)
            else:
                go = status == "success"
            if not go:
                continue
            ok, outputs, text = self.run_step(step, i, ctx, job_env, env_file, ws, home, temp,
                                              default_shell)
            log.append(f"--- {step.get('name', step.get('uses', 'step'))}\n{text}")
            if "id" in step:
                ctx["steps"][step["id"]] = {"outputs": outputs}
            if not ok:
                status = "failure"
        outputs = {
            k: self.ev.interpolate(str(v), ctx) for k, v in (job.get("outputs") or {}).items()
        }
        return JobRun(status, outputs, "\n".join(log))

    def run_step(self, step: dict[str, Any], index: int, ctx: dict[str, Any],
                 job_env: dict[str, str], env_file: Path, ws: Path, home: Path, temp: Path,
                 default_shell: str) -> tuple[bool, dict[str, str], str]:
        if "uses" in step:
            return self.run_action(step, ctx, ws)
        out_file = temp / f"output-{index}"
        out_file.write_text("")
        script = temp / f"step-{index}.sh"
        script.write_text(self.ev.interpolate(step["run"], ctx))
        exported = _read_env(env_file)
        path_file = env_file.parent / "github_path"
        # $GITHUB_PATH entries come first, the latest added first (as on GitHub).
        added = [p for p in reversed(path_file.read_text().splitlines()) if p]
        env = {
            "PATH": os.pathsep.join([*added, os.environ["PATH"]]), "HOME": str(home),
            "CI": "true",
            "GITHUB_WORKSPACE": str(ws), "RUNNER_TEMP": str(temp), "GITHUB_OUTPUT": str(out_file),
            "GITHUB_ENV": str(env_file), "GITHUB_PATH": str(path_file),
            "GITHUB_REF_TYPE": ctx["github"]["ref_type"],
            "GITHUB_EVENT_NAME": ctx["github"]["event_name"],
            "GITHUB_REF_NAME": ctx["github"]["ref_name"], "GITHUB_SHA": ctx["github"]["sha"],
            **job_env, **exported,
            **{k: self.ev.interpolate(str(v), ctx) for k, v in (step.get("env") or {}).items()},
        }
        shell = step.get("shell", default_shell)
        if shell == "bash":
            cmd = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
        else:
            cmd = [w.replace("{0}", str(script)) for w in shell.split()]
        wd = step.get("working-directory")
        cwd = ws / wd if wd and not wd.startswith("/") else Path(wd) if wd else ws
        if not cwd.is_dir():
            return False, {}, f"working-directory {cwd} does not exist"
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=120)
        outputs = dict(
            line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line
        )
        return r.returncode == 0, outputs, r.stdout + r.stderr

    def run_action(self, step: dict[str, Any], ctx: dict[str, Any],
                   ws: Path) -> tuple[bool, dict[str, str], str]:
        uses: str = step["uses"]
        with_ = {k: self.ev.interpolate(str(v), ctx) for k, v in (step.get("with") or {}).items()}
        name = uses.split("@")[0]
        if name == "actions/checkout":
            dest = ws / with_.get("path", ".")
            _copy_into(self.source, dest)
            return True, {}, f"checked out into {dest}"
        if name == "actions/upload-artifact":
            store = self.artifacts / with_["name"]
            if store.exists():
                return False, {}, f"artifact {with_['name']} already exists"
            src = Path(with_["path"])
            src = src if src.is_absolute() else ws / src
            if not src.exists():
                missing_ok = with_.get("if-no-files-found", "warn") != "error"
                return missing_ok, {}, f"no files at {src}"
            _copy_into(src, store)
            return True, {}, f"uploaded {with_['name']}"
        if name == "actions/download-artifact":
            store = self.artifacts / with_["name"]
            if not store.exists():
                return False, {}, f"artifact {with_['name']} not found"
            dest = Path(with_.get("path", "."))
            dest = dest if dest.is_absolute() else ws / dest
            _copy_into(store, dest)
            return True, {}, f"downloaded {with_['name']}"
        if name in ("actions/cache/save", "actions/cache/restore"):
            return self.cache_action(name.rsplit("/", 1)[1], with_, ws)
        return False, {}, f"action {uses} is not emulated"

    def cache_action(self, op: str, with_: dict[str, str],
                     ws: Path) -> tuple[bool, dict[str, str], str]:
        """GitHub's cache: immutable keys; restore tries `key` exactly, then as a prefix, then
        each restore key as a prefix, newest first; the path list is part of the version."""
        store = self.workdir / "cache"
        store.mkdir(exist_ok=True)
        paths = [p for p in with_["path"].splitlines() if p.strip()]
        home = ws.parent / "home"

        def resolve(p: str) -> Path:
            if p.startswith("~/"):
                return home / p[2:]
            return Path(p) if p.startswith("/") else ws / p

        entries = sorted(store.glob("*/meta.json"), key=lambda m: -m.stat().st_mtime_ns)
        metas = [(m.parent, json.loads(m.read_text())) for m in entries]
        if op == "save":
            key = with_["key"]
            if any(meta["key"] == key for _, meta in metas):
                return True, {}, f"cache {key} already exists; not saved"
            entry = store / f"{len(metas):04d}"
            for i, p in enumerate(paths):
                if resolve(p).exists():
                    _copy_into(resolve(p), entry / str(i))
            entry.mkdir(parents=True, exist_ok=True)
            (entry / "meta.json").write_text(json.dumps({"key": key, "paths": paths}))
            return True, {}, f"saved cache {key}"
        candidates = [p for p in with_.get("restore-keys", "").splitlines() if p.strip()]
        hit = None
        for meta_dir, meta in metas:
            if meta["key"] == with_["key"] and meta["paths"] == paths:
                hit = (meta_dir, meta)
        for prefix in [with_["key"], *candidates]:
            if hit:
                break
            for meta_dir, meta in metas:  # newest first
                if meta["key"].startswith(prefix) and meta["paths"] == paths:
                    hit = (meta_dir, meta)
                    break
        if not hit:
            return True, {}, "cache miss"
        for i, p in enumerate(paths):
            saved = hit[0] / str(i)
            if saved.exists():
                dest = resolve(p)
                if dest.exists() and dest.is_dir():
                    shutil.copytree(saved, dest, dirs_exist_ok=True)
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    target = saved / Path(p).name if (saved / Path(p).name).is_file() else saved
                    if target.is_dir():
                        shutil.copytree(target, dest, dirs_exist_ok=True)
                    else:
                        shutil.copy2(target, dest)
        return True, {}, f"restored cache {hit[1]['key']}"


def gate_outputs(script: str, events: list[tuple[str, ...]]) -> dict[tuple[str, ...], set[str]]:
    """Run a generated `circleci-gate` script once per event in one bash process; for each
    event, the job ids whose output is `true`. An event is (ref type, ref name), a push, or
    (GitHub event name, ref type, ref name)."""
    def one(ev: tuple[str, ...]) -> str:
        gh_event, kind, name = ("push", *ev) if len(ev) == 2 else ev
        return (f"echo {shlex.quote('@@ ' + chr(31).join(ev))}; out=$(mktemp);"
                f" GITHUB_EVENT_NAME={shlex.quote(gh_event)} GITHUB_REF_TYPE={kind}"
                f" GITHUB_REF_NAME={shlex.quote(name)}"
                ' GITHUB_OUTPUT="$out" bash -c "$script" >/dev/null; cat "$out"; rm -f "$out"\n')

    driver = "script=" + shlex.quote(script) + "\n" + "".join(one(e) for e in events)
    out = subprocess.run(["bash", "-c", driver], capture_output=True, text=True, check=True)
    results: dict[tuple[str, ...], set[str]] = {}
    current: tuple[str, ...] | None = None
    for line in out.stdout.splitlines():
        if line.startswith("@@ "):
            current = tuple(line[3:].split(chr(31)))
            results[current] = set()
        elif current and line.endswith("=true"):
            results[current].add(line.rsplit("=", 1)[0])
    return results
