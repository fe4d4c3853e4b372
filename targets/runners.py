"""Where a job runs: executor + image + resource_class → GitHub `runs-on`, GitLab tags/image.

The defaults follow semantics §2.2–2.5 and §9.1–9.2; a `--runner-map FILE` (YAML, schema in
docs/targets.md) overrides them rule by rule. Both GitHub and GitLab targets read one
`Placement` per job, and the migration report lists every label so the user can check it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import field, replace
from functools import lru_cache

from cicompile import ir
from cicompile.diagnostics import ConfigError, Diagnostics, Span
from cicompile.records import dataclass
from cicompile.targets.base import EmitContext
from cicompile.targets.services import image_repo

LINUX, MACOS, WINDOWS = "linux", "macos", "windows"

# CircleCI resource classes: vCPUs and GB of memory, per executor kind.
_DOCKER_SIZES = {
    "small": (1, 2), "medium": (2, 4), "medium+": (3, 6), "large": (4, 8), "xlarge": (8, 16),
    "2xlarge": (16, 32), "2xlarge+": (20, 40),
}
_MACHINE_SIZES = {"medium": (2, 7.5), "large": (4, 15), "xlarge": (8, 32), "2xlarge": (16, 64)}
_ARM_SIZES = {"medium": (2, 8), "large": (4, 16), "xlarge": (8, 32), "2xlarge": (16, 64)}
# GitHub's standard Linux runner (public repositories; private ones get 2 vCPU / 8 GB).
_GITHUB_STANDARD = (4, 16)
# GitLab.com hosted runner tags (self-managed instances use their own tags).
_GITLAB_ARM = {"large": "saas-linux-large-arm64", "xlarge": "saas-linux-large-arm64"}
_GITLAB_MACOS = "saas-macos-medium-m1"
_GITLAB_WINDOWS = "saas-windows-medium-amd64"
_GITLAB_GPU = "saas-linux-medium-amd64-gpu-standard"
_SELF_HOSTED = {LINUX: ("self-hosted", "linux", "x64"), WINDOWS: ("self-hosted", "windows", "x64"),
                MACOS: ("self-hosted", "macos")}
# Windows shells as CircleCI configs spell them → GitHub's built-in shell names.
_WINDOWS_SHELLS = {"powershell": "powershell", "pwsh": "pwsh", "bash": "bash", "cmd": "cmd"}


@dataclass(frozen=True)
class Finding:
    severity: str  # "warning" | "note"
    code: str
    message: str
    about_label: bool = False  # a rule that sets the labels makes it moot


@dataclass(frozen=True)
class Placement:
    os: str
    runs_on: tuple[str, ...]  # GitHub labels
    container: bool  # GitHub: steps run in the primary docker image (`container:`)
    gitlab_tags: tuple[str, ...] = ()
    gitlab_image: str | None = None  # non-docker executors: the image the runner uses
    xcode: str | None = None  # normalised Xcode version to select (macOS)
    shell: str | None = None  # GitHub shell for the job's `run` steps that name none
    rule: str | None = None  # "FILE:L:C" of the --runner-map rule that applied
    findings: tuple[Finding, ...] = ()

    def describe(self, target: str) -> str:
        if target == "github":
            labels = ", ".join(f"`{label}`" for label in self.runs_on)
            return labels + (" + `container:`" if self.container else "")
        parts = [f"tags {', '.join(f'`{t}`' for t in self.gitlab_tags)}"] if self.gitlab_tags \
            else ["any runner (no `tags`)"]
        if self.gitlab_image:
            parts.append(f"image `{self.gitlab_image}`")
        return ", ".join(parts)


@dataclass(frozen=True)
class Rule:
    span: Span
    executor: str | None = None
    image: str | None = None
    resource_class: str | None = None
    xcode: str | None = None
    runs_on: tuple[str, ...] | None = None
    container: bool | None = None
    tags: tuple[str, ...] | None = None
    gitlab_image: str | None = None

    def matches(self, ex: ir.Executor, os: str) -> bool:
        kind = WINDOWS if os == WINDOWS else str(ex.kind)
        image = ex.images[0].image if ex.images else ex.machine_image
        checks = ((self.executor, kind), (self.image, image),
                  (self.resource_class, ex.resource_class), (self.xcode, ex.xcode))
        return all(pat is None or (val is not None and fnmatch.fnmatchcase(val, pat))
                   for pat, val in checks)


@dataclass(frozen=True)
class RunnerMap:
    github: tuple[Rule, ...] = ()
    gitlab: tuple[Rule, ...] = ()


@dataclass
class RunnerUse:
    """One job's placement, for the report's runner table."""

    span: Span | None
    job: str
    executor: str
    placement: Placement = field(repr=False)


def xcode_version(text: str) -> str:
    """`15.0.0` → `15.0`, `16.2.0` → `16.2`: GitHub names Xcodes `Xcode_<major.minor[.patch]>`."""
    parts = text.split(".")
    while len(parts) > 2 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts)


def _os(ex: ir.Executor) -> str:
    rc = ex.resource_class or ""
    image = (ex.machine_image or "").lower()
    if ex.kind is ir.ExecutorKind.WINDOWS or image.startswith("windows") or rc.startswith(
            "windows."):
        return WINDOWS
    if ex.kind is ir.ExecutorKind.MACOS or rc.startswith(("macos.", "m2", "m4pro")):
        return MACOS
    return LINUX


def _is_gpu(ex: ir.Executor) -> bool:
    rc = ex.resource_class or ""
    image = (ex.machine_image or "").lower()
    return rc.startswith("gpu.") or ".gpu." in rc or any(w in image for w in ("cuda", "nvidia",
                                                                               "gpu"))


def _size_note(ex: ir.Executor, where: str) -> Finding | None:
    rc = ex.resource_class or ""
    base = rc.removeprefix("arm.").split(".gen", 1)[0]
    table = (_ARM_SIZES if rc.startswith("arm.") else _DOCKER_SIZES
             if ex.kind is ir.ExecutorKind.DOCKER else _MACHINE_SIZES)
    size = table.get(base)
    if size is None or size[0] < 4:
        return None
    return Finding(
        "note", "runner-size",
        f"resource_class `{rc}` ({size[0]} vCPU, {size[1]} GB) runs on {where}; for more, map"
        " it to a larger runner with --runner-map", about_label=True)


def _labels(labels: tuple[str, ...]) -> str:
    return "`[" + ", ".join(labels) + "]`" if len(labels) > 1 else f"`{labels[0]}`"


def _macos(ex: ir.Executor, target: str) -> Placement:
    findings: list[Finding] = []
    xcode = xcode_version(ex.xcode) if ex.xcode else None
    major = int(m.group(1)) if xcode and (m := re.match(r"(\d+)", xcode)) else None
    intel = (ex.resource_class or "").startswith("macos.x86")
    if major is None:
        label = "macos-latest"
    elif major >= 26:
        label = "macos-26"
    elif major == 16 or intel:
        label = "macos-15"
    else:
        label = "macos-14"
    if intel:
        label += "-intel" if label in ("macos-15", "macos-26") else ""
    gl_image = "macos-15-xcode-16" if major is None or major >= 16 else "macos-14-xcode-15"
    if target == "github" and major is not None and major < 15:
        findings.append(Finding(
            "warning", "runner-xcode",
            f"Xcode {ex.xcode} is not installed on GitHub's hosted macOS runners (`{label}` has"
            " Xcode 15 and later): the job fails at the Xcode selection step unless you map it"
            " to a runner that has it (--runner-map)"))
    if target == "gitlab" and major is not None and str(major) != gl_image.rsplit("-", 1)[1]:
        findings.append(Finding(
            "warning", "runner-xcode",
            f"Xcode {ex.xcode}: the nearest GitLab hosted macOS image, `{gl_image}`, has Xcode"
            f" {gl_image.rsplit('-', 1)[1]}; map the job to a runner or image that has it"
            " (--runner-map)", about_label=True))
    return Placement(MACOS, (label,), False, (_GITLAB_MACOS,), gl_image, xcode,
                     findings=tuple(findings))


def _windows(ex: ir.Executor, target: str) -> Placement:
    image = ex.machine_image or ""
    label = "windows-2025" if "2025" in image else "windows-2022"
    findings: list[Finding] = []
    if "2019" in image and target == "github":
        findings.append(Finding("warning", "runner-image",
                                f"machine image `{image}`: GitHub retired Windows Server 2019"
                                f" runners; the job runs on `{label}`"))
    placement = Placement(WINDOWS, (label,), False, (_GITLAB_WINDOWS,), shell="powershell")
    if _is_gpu(ex):
        placement = replace(placement, runs_on=_SELF_HOSTED[WINDOWS])
        findings.append(_gpu_finding(ex, placement, target))
    return replace(placement, findings=tuple(findings))


def _gpu_finding(ex: ir.Executor, placement: Placement, target: str) -> Finding:
    image = ex.machine_image
    got = (_labels(placement.runs_on) if target == "github"
           else f"the hosted tag `{placement.gitlab_tags[0]}`" if placement.gitlab_tags
           else "any runner")
    return Finding(
        "warning", "runner-gpu",
        f"GPU executor (resource_class `{ex.resource_class or '-'}`"
        f"{', image `' + image + '`' if image else ''}): no default runner has a GPU; the job"
        f" gets {got}: give your GPU runner's {'labels' if target == 'github' else 'tags'}"
        " with --runner-map", about_label=True)


_UBUNTU = {"2604": "ubuntu-26.04", "2404": "ubuntu-24.04", "2204": "ubuntu-22.04"}


def _linux(ex: ir.Executor, target: str) -> Placement:
    rc = ex.resource_class or ""
    arm = rc.startswith("arm.")
    docker = ex.kind is ir.ExecutorKind.DOCKER
    findings: list[Finding] = []
    label = "ubuntu-latest"
    image = ex.machine_image or ""
    m = re.match(r"ubuntu-(\d{4})", image)
    if m:
        label = _UBUNTU.get(m.group(1), "ubuntu-22.04")
        if m.group(1) not in _UBUNTU and target == "github":
            findings.append(Finding("warning", "runner-image",
                                    f"machine image `{image}`: GitHub has no runner with this"
                                    f" Ubuntu release any more; the job runs on `{label}`"))
    tags: tuple[str, ...] = ()
    if arm:
        label = "ubuntu-22.04-arm" if label == "ubuntu-22.04" else "ubuntu-24.04-arm"
        size = rc.removeprefix("arm.")
        tags = (_GITLAB_ARM.get(size, "saas-linux-medium-arm64"),)
    if _is_gpu(ex):
        placement = Placement(LINUX, _SELF_HOSTED[LINUX], docker, (_GITLAB_GPU,))
        findings.append(_gpu_finding(ex, placement, target))
        return replace(placement, findings=tuple(findings))
    if "/" in rc:
        got = _labels(_SELF_HOSTED[LINUX]) if target == "github" else "any runner"
        findings.append(Finding(
            "warning", "runner-self-hosted",
            f"resource_class `{rc}` is a CircleCI self-hosted runner: the job gets {got}; map"
            " it to your own runner's labels or tags with --runner-map", about_label=True))
        return Placement(LINUX, _SELF_HOSTED[LINUX], docker, findings=tuple(findings))
    where = (f"GitHub's standard `{label}` runner ({_GITHUB_STANDARD[0]} vCPU,"
             f" {_GITHUB_STANDARD[1]} GB for public repositories)" if target == "github"
             else "any runner (no `tags`)" if not tags else f"runners tagged `{tags[0]}`")
    note = _size_note(ex, where)
    if note:
        findings.append(note)
    return Placement(LINUX, (label,), docker, tags, findings=tuple(findings))


def _shell_word(shell: str) -> str:
    """`C:\\x\\powershell.exe -ExecutionPolicy Bypass` → `powershell`."""
    words = shell.split()
    first = words[0] if words else ""
    return first.replace("\\", "/").rsplit("/", 1)[-1].lower().removesuffix(".exe")


def default_placement(ex: ir.Executor, target: str, shells: tuple[str, ...] = ()) -> Placement:
    """`shells`: the job's and its steps' `shell:` values, which tell Windows jobs whose
    executor is unknown (a registry orb's `win/default` without its source)."""
    os = _os(ex)
    if os == MACOS:
        return _macos(ex, target)
    if os == WINDOWS:
        return _windows(ex, target)
    windows_shell = next((s for s in shells if _shell_word(s) in ("powershell", "pwsh", "cmd")),
                         None)
    if ex.kind is ir.ExecutorKind.NONE and windows_shell is not None:
        placement = _windows(ex, target)
        where = (_labels(placement.runs_on) if target == "github"
                 else f"GitLab tag `{_GITLAB_WINDOWS}`")
        return replace(placement, findings=(*placement.findings, Finding(
            "note", "runner-windows",
            f"the job's executor is unknown, but it runs `{windows_shell}`: it is placed on"
            f" Windows ({where})", about_label=True)))
    return _linux(ex, target)


def place(ex: ir.Executor, target: str, runner_map: RunnerMap | None,
          shells: tuple[str, ...] = ()) -> Placement:
    """The default placement, overridden by the first matching rule of the runner map."""
    placement = default_placement(ex, target, shells)
    rules = () if runner_map is None else (
        runner_map.github if target == "github" else runner_map.gitlab)
    for rule in rules:
        if not rule.matches(ex, placement.os):
            continue
        sets_labels = rule.runs_on is not None or rule.tags is not None
        findings = tuple(f for f in placement.findings if not (sets_labels and f.about_label))
        return replace(
            placement,
            runs_on=rule.runs_on if rule.runs_on is not None else placement.runs_on,
            container=(rule.container if rule.container is not None else placement.container),
            gitlab_tags=rule.tags if rule.tags is not None else placement.gitlab_tags,
            gitlab_image=rule.gitlab_image or placement.gitlab_image,
            rule=str(rule.span), findings=findings)
    return placement


# `place` memoised: it is pure (the IR and runner maps are immutable, compared by value, the
# result frozen), and a config's jobs share a few executors.
_placed = lru_cache(maxsize=512)(place)


def job_placement(ctx: EmitContext, target: str, job: ir.Job, node: str) -> Placement:
    """`place` for one job invocation: its findings become diagnostics at the executor, and the
    report's runner table gets a row."""
    ex = job.executor
    shells = tuple(s for s in (job.shell, *(st.shell for st in job.steps
                                            if isinstance(st, ir.Run))) if s)
    placement = _placed(ex, target, ctx.runner_map, shells)
    for f in placement.findings:
        if f.severity == "warning":
            ctx.diags.warning(f.code, f.message, ex.span)
        else:
            ctx.diags.note(f.code, f.message, ex.span)
    ctx.runner_uses.append(RunnerUse(ex.span, node, executor_summary(ex), placement))
    return placement


def github_shell(shell: str, os: str) -> str:
    """A CircleCI `shell:` as a GitHub `shell:` value."""
    if os == WINDOWS:
        word = _shell_word(shell)
        if word in _WINDOWS_SHELLS:
            # GitHub runs its own command line for these (a .ps1/.cmd file for PowerShell and
            # cmd, which a custom `{0}` shell would not name so).
            return _WINDOWS_SHELLS[word]
    return shell if "{0}" in shell else f"{shell} {{0}}"


def executor_summary(ex: ir.Executor) -> str:
    if ex.kind is ir.ExecutorKind.DOCKER and ex.images:
        text = f"docker `{image_repo(ex.images[0].image)}`"
    elif ex.kind is ir.ExecutorKind.MACHINE:
        text = f"machine `{ex.machine_image}`" if ex.machine_image else "machine"
    elif ex.kind is ir.ExecutorKind.MACOS:
        text = f"macos xcode `{ex.xcode}`" if ex.xcode else "macos"
    else:
        text = str(ex.kind)
    return text + (f", resource_class `{ex.resource_class}`" if ex.resource_class else "")


# ---- the --runner-map file ------------------------------------------------------------

_TARGET_KEYS = ("github", "gitlab")
_MATCH_KEYS = ("executor", "image", "resource_class", "xcode")
_EXECUTORS = ("docker", "machine", "macos", "windows", "none")
_RULE_KEYS = {"github": ("match", "runs-on", "container"), "gitlab": ("match", "tags", "image")}
_LABEL = re.compile(r"[A-Za-z0-9._/-]+")


def load_runner_map(text: str, path: str, diags: Diagnostics) -> RunnerMap:
    """Parse and validate a runner map; errors (code `runner-map`) raise ConfigError."""
    from cicompile.frontend.yaml_loader import YMap, YScalar, YSeq, load_yaml

    root = load_yaml(text, path, diags)

    def err(message: str, span: Span) -> None:
        diags.error("runner-map", message, span)

    def string(node: object, what: str) -> str | None:
        if isinstance(node, YScalar) and isinstance(node.value, str) and node.value:
            return node.value
        err(f"{what} must be a non-empty string", node.span)  # type: ignore[attr-defined]
        return None

    def labels(node: object, what: str) -> tuple[str, ...] | None:
        items = node.items if isinstance(node, YSeq) else (node,)
        out = []
        for item in items:
            s = string(item, f"each of {what}")
            if s is None:
                return None
            if not _LABEL.fullmatch(s):
                err(f"{what}: {s!r} is not a runner label (letters, digits, . _ / -)",
                    item.span)  # type: ignore[attr-defined]
                return None
            out.append(s)
        if not out:
            err(f"{what} must name at least one label", node.span)  # type: ignore[attr-defined]
            return None
        return tuple(out)

    def rule(target: str, node: object, n: int) -> Rule | None:
        if not isinstance(node, YMap):
            err(f"{target} rule {n} must be a mapping with `match` and what to use",
                node.span)  # type: ignore[attr-defined]
            return None
        for k, _ in node.pairs:
            if k.as_str() not in _RULE_KEYS[target]:
                err(f"unknown key {k.as_str()!r} in a {target} rule (expected one of"
                    f" {', '.join(_RULE_KEYS[target])})", k.span)
                return None
        match: dict[str, str] = {}
        m = node.get("match")
        if m is not None:
            if not isinstance(m, YMap):
                err("`match` must be a mapping", m.span)
                return None
            for k, v in m.pairs:
                key = k.as_str()
                if key not in _MATCH_KEYS:
                    err(f"unknown `match` key {key!r} (expected one of"
                        f" {', '.join(_MATCH_KEYS)})", k.span)
                    return None
                s = string(v, f"`match.{key}`")
                if s is None:
                    return None
                if key == "executor" and s not in _EXECUTORS:
                    err(f"`match.executor` must be one of {', '.join(_EXECUTORS)}, not {s!r}",
                        v.span)
                    return None
                match[key] = s
        out = Rule(node.span, **match)  # type: ignore[arg-type]
        if target == "github":
            runs_on = node.get("runs-on")
            container = node.get("container")
            if runs_on is None and container is None:
                err("a github rule needs `runs-on` or `container`", node.span)
                return None
            if runs_on is not None:
                got = labels(runs_on, "`runs-on`")
                if got is None:
                    return None
                out = replace(out, runs_on=got)
            if container is not None:
                if not (isinstance(container, YScalar) and isinstance(container.value, bool)):
                    err("`container` must be true or false", container.span)
                    return None
                out = replace(out, container=container.value)
        else:
            tags = node.get("tags")
            image = node.get("image")
            if tags is None and image is None:
                err("a gitlab rule needs `tags` or `image`", node.span)
                return None
            if tags is not None:
                got = labels(tags, "`tags`")
                if got is None:
                    return None
                out = replace(out, tags=got)
            if image is not None:
                s = string(image, "`image`")
                if s is None:
                    return None
                out = replace(out, gitlab_image=s)
        return out

    if not isinstance(root, YMap):
        err("a runner map is a mapping with `github:` and/or `gitlab:` rule lists",
            root.span if root is not None else Span(path, 1, 1))
        raise ConfigError
    found: dict[str, tuple[Rule, ...]] = {}
    for k, v in root.pairs:
        key = k.as_str()
        if key not in _TARGET_KEYS:
            err(f"unknown key {key!r} (expected github, gitlab)", k.span)
            continue
        if not isinstance(v, YSeq):
            err(f"`{key}` must be a list of rules", v.span)
            continue
        rules = [rule(key, item, i) for i, item in enumerate(v.items, 1)]
        found[key] = tuple(r for r in rules if r is not None)
    if diags.has_errors:
        raise ConfigError
    return RunnerMap(found.get("github", ()), found.get("gitlab", ()))


def report_host_platform(diags: Diagnostics, job: ir.Job) -> None:
    """make/shell run every job on this host, whatever operating system CircleCI gave it."""
    os = _os(job.executor)
    if os == LINUX:
        return
    name = "macOS" if os == MACOS else "Windows"
    diags.warning(
        "local-platform",
        f"job {job.name!r} ran on {name} on CircleCI; the make and shell targets run it on this"
        " host, so its commands need that system's tools: run the script on such a machine"
        " for this job",
        job.executor.span or job.span,
    )
