"""cicompile: compile CircleCI configs into GitHub Actions, GitLab CI, Makefile and shell.

Public API: `compile_config(text, target, path=..., pipeline_params=...)` → `Result`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any

from cicompile.diagnostics import ConfigError, Diagnostic, Diagnostics
from cicompile.records import dataclass

__version__ = "0.1.0"


@dataclass
class Result:
    files: dict[str, str] = field(default_factory=dict)  # relative output path → text
    diagnostics: list[Diagnostic] = field(default_factory=list)
    pipeline: object = None  # the compiled IR (cicompile.ir.Pipeline), for reports and tools
    target: str = ""
    # Each job's runner (targets.runners.RunnerUse), for the report's runner table.
    runners: list[Any] = field(default_factory=list)

    def report(self) -> str:
        """The Markdown migration report (rendered on demand: it needs jinja2)."""
        from cicompile.ir import Pipeline
        from cicompile.targets.report import render_report

        assert isinstance(self.pipeline, Pipeline)
        return render_report(self.pipeline, self.target, self.diagnostics, self.runners)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def build_ir(text: str, path: str, diags: Diagnostics, *,
             pipeline_params: dict[str, str] | None = None, orb_dir: Path | None = None,
             on_expanded: Callable[[object], None] | None = None) -> object:
    """Front end + passes. Raises ConfigError after recording errors.

    `pipeline_params`: values of 2.1 pipeline parameters, as text (`--param name=value`).
    `orb_dir`: where registry orbs' sources are (docs/orbs.md); `on_expanded` receives the
    config tree after 2.1 expansion (the `circleci` target prints it).
    """
    from cicompile.frontend.circleci import parse_config
    from cicompile.passes import PassContext, run_passes

    pipeline = parse_config(text, path, diags, pipeline_params=pipeline_params,
                            orb_dir=orb_dir, on_expanded=on_expanded)
    pipeline = run_passes(pipeline, PassContext(diags))
    if diags.has_errors:
        raise ConfigError
    return pipeline


def compile_config(text: str, target: str, *, path: str = "config.yml",
                   pipeline_params: dict[str, str] | None = None,
                   orb_dir: Path | None = None, runner_map: object = None) -> Result:
    """`runner_map`: a `targets.runners.RunnerMap` (`--runner-map`) overriding default runners."""
    # The IR is acyclic and short-lived: Python's cyclic GC would only rescan a growing heap
    # (it made 10,000-job configs take 2.5x longer), so it pauses while one config compiles.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile(text, target, path, pipeline_params, orb_dir, runner_map)
    finally:
        if was_enabled:
            gc.enable()


def _compile(text: str, target: str, path: str, pipeline_params: dict[str, str] | None,
             orb_dir: Path | None, runner_map: object = None) -> Result:
    from cicompile.ir import Pipeline
    from cicompile.targets import get_target
    from cicompile.targets.base import EmitContext

    diags = Diagnostics()
    ctx = EmitContext(diags, runner_map=runner_map)  # type: ignore[arg-type]
    try:
        pipeline = build_ir(text, path, diags, pipeline_params=pipeline_params, orb_dir=orb_dir,
                            on_expanded=_keep_tree(ctx) if target == "circleci" else None)
        assert isinstance(pipeline, Pipeline)
        files = get_target(target).emit(pipeline, ctx)
    except ConfigError:
        return Result({}, diags.sorted())
    if diags.has_errors:
        return Result({}, diags.sorted())
    return Result(files, diags.sorted(), pipeline, target, ctx.runner_uses)


def _keep_tree(ctx: Any) -> Callable[[object], None]:
    def keep(tree: object) -> None:
        ctx.expanded = tree

    return keep
