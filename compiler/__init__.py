"""cicompile: compile CircleCI configs into GitHub Actions, GitLab CI, Makefile and shell.

Public API: `compile_config(text, target, path=..., pipeline_params=...)` → `Result`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cicompile.diagnostics import ConfigError, Diagnostic, Diagnostics

__version__ = "0.1.0"


@dataclass
class Result:
    files: dict[str, str] = field(default_factory=dict)  # relative output path → text
    diagnostics: list[Diagnostic] = field(default_factory=list)
    pipeline: object = None  # the compiled IR (cicompile.ir.Pipeline), for reports and tools
    target: str = ""

    def report(self) -> str:
        """The Markdown migration report (rendered on demand: it needs jinja2)."""
        from cicompile.ir import Pipeline
        from cicompile.targets.report import render_report

        assert isinstance(self.pipeline, Pipeline)
        return render_report(self.pipeline, self.target, self.diagnostics)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def build_ir(text: str, path: str, diags: Diagnostics, *,
             pipeline_params: dict[str, str] | None = None) -> object:
    """Front end + passes. Raises ConfigError after recording errors.

    `pipeline_params`: values of 2.1 pipeline parameters, as text (`--param name=value`).
    """
    from cicompile.frontend.circleci import parse_config
    from cicompile.passes import PassContext, run_passes

    pipeline = parse_config(text, path, diags, pipeline_params=pipeline_params)
    pipeline = run_passes(pipeline, PassContext(diags))
    if diags.has_errors:
        raise ConfigError
    return pipeline


def compile_config(text: str, target: str, *, path: str = "config.yml",
                   pipeline_params: dict[str, str] | None = None) -> Result:
    from cicompile.ir import Pipeline
    from cicompile.targets import get_target
    from cicompile.targets.base import EmitContext

    diags = Diagnostics()
    try:
        pipeline = build_ir(text, path, diags, pipeline_params=pipeline_params)
        assert isinstance(pipeline, Pipeline)
        files = get_target(target).emit(pipeline, EmitContext(diags))
    except ConfigError:
        return Result({}, diags.sorted())
    if diags.has_errors:
        return Result({}, diags.sorted())
    return Result(files, diags.sorted(), pipeline, target)
