"""Positions and diagnostics shared by every stage of the compiler.

Format (mypy's ``srcloc: severity: message`` plus actionlint's trailing code):
``path:line:col: severity: message [code]`` with 1-based line and column.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import field

from cicompile.records import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A 1-based source position (converted from PyYAML's 0-based marks at the front end)."""

    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTE: 2}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    code: str
    message: str
    span: Span | None = None

    def sort_key(self) -> tuple[str, int, int, int, str, str]:
        s = self.span
        return (
            s.path if s else "",
            s.line if s else 0,
            s.col if s else 0,
            _SEVERITY_ORDER[self.severity],
            self.code,
            self.message,
        )

    def render(self) -> str:
        where = f"{self.span}: " if self.span else ""
        return f"{where}{self.severity}: {self.message} [{self.code}]"


@dataclass
class Diagnostics:
    """A sink that stages append to; sorted and deduplicated when read."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span | None) -> None:
        self.items.append(Diagnostic(Severity.ERROR, code, message, span))

    def warning(self, code: str, message: str, span: Span | None) -> None:
        self.items.append(Diagnostic(Severity.WARNING, code, message, span))

    def note(self, code: str, message: str, span: Span | None) -> None:
        self.items.append(Diagnostic(Severity.NOTE, code, message, span))

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(set(self.items), key=Diagnostic.sort_key)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.sorted())

    def __len__(self) -> int:
        return len(self.items)


class ConfigError(Exception):
    """Raised to abandon compilation after errors were recorded in a Diagnostics sink."""


def render_text(diags: Iterable[Diagnostic]) -> str:
    return "".join(d.render() + "\n" for d in diags)


def render_json(diags: Iterable[Diagnostic]) -> str:
    rows = [
        {
            "severity": str(d.severity),
            "code": d.code,
            "message": d.message,
            "path": d.span.path if d.span else None,
            "line": d.span.line if d.span else None,
            "column": d.span.col if d.span else None,
        }
        for d in diags
    ]
    import json  # only `--format json` needs it (cold start)

    return json.dumps({"version": 1, "diagnostics": rows}, indent=2) + "\n"


def render_github(diags: Iterable[Diagnostic]) -> str:
    out = []
    for d in diags:
        kind = {"error": "error", "warning": "warning", "note": "notice"}[d.severity]
        params = []
        if d.span:
            params += [f"file={d.span.path}", f"line={d.span.line}", f"col={d.span.col}"]
        params.append(f"title={d.code}")
        msg = d.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        out.append(f"::{kind} {','.join(params)}::{msg}\n")
    return "".join(out)
