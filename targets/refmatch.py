"""Rendering ref conditions (filters) for the targets, and CircleCI's Java regexes for them.

CircleCI filter regexes are Java regexes that must match the whole branch or tag name. Bash
(`[[ =~ ]]`, glibc ERE) and GitLab (RE2, substring match) read regexes differently, so each gets
a translation here, anchored for a full match. Constructs neither can express (lookaround,
backreferences) are reported by `unsupported_regex_features`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from cicompile.conditions import (
    SCHEDULED,
    And,
    Cond,
    Const,
    IsKind,
    Match,
    Not,
    Or,
    RefKind,
    ScheduleName,
    Trigger,
)

_UNSUPPORTED = [
    (re.compile(r"\(\?<?[=!]"), "lookaround"),
    (re.compile(r"\\[1-9]"), "backreference"),
    (re.compile(r"\(\?>"), "atomic group"),
    (re.compile(r"[*+?}]\+"), "possessive quantifier"),
]


def unsupported_regex_features(regex: str) -> list[str]:
    return [what for pat, what in _UNSUPPORTED if pat.search(regex)]


_ERE_SPECIAL = set(".[]()*+?{}|^$\\")
_ERE_CLASS_ESCAPES = {"d": "0-9", "w": "A-Za-z0-9_", "s": "[:space:]"}
_ERE_ESCAPES = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "w": "[A-Za-z0-9_]",
    "W": "[^A-Za-z0-9_]",
    "s": "[[:space:]]",
    "S": "[^[:space:]]",
    "t": "\t",
    "n": "\n",
}


def java_to_ere(regex: str) -> str:
    """Translate a Java regex into a POSIX ERE with the same set of full matches."""
    out: list[str] = []
    i, n = 0, len(regex)
    in_class = False
    while i < n:
        c = regex[i]
        if c == "\\" and i + 1 < n:
            e = regex[i + 1]
            i += 2
            if in_class:
                if e in _ERE_CLASS_ESCAPES:
                    out.append(_ERE_CLASS_ESCAPES[e])
                elif e == "]" or e == "\\":
                    out.append("\\" + e if e == "\\" else e)
                else:
                    out.append(e)
            elif e in _ERE_ESCAPES:
                out.append(_ERE_ESCAPES[e])
            elif e in _ERE_SPECIAL or e in "bB":
                out.append("\\" + e)  # `\b`, `\B`: word boundaries (glibc ERE has them too)
            else:
                out.append(e)  # an escaped ordinary character is that character
            continue
        if in_class:
            if c == "]" and out and out[-1] not in ("[", "[^"):
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            if regex.startswith("[^", i):
                out.append("[^")
                i += 2
            else:
                out.append("[")
                i += 1
            if i < n and regex[i] == "]":  # a leading `]` is literal
                out.append("]")
                i += 1
            continue
        if c == "(" and regex.startswith("(?:", i):
            out.append("(")
            i += 3
            continue
        if c in "*+?}" and i + 1 < n and regex[i + 1] == "?":
            # Lazy quantifiers match the same set of whole strings as greedy ones.
            out.append(c)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def java_to_re2_literal(regex: str) -> str:
    """A GitLab `/…/` regex literal that fully matches what the Java regex fully matches."""
    body = re.sub(r"(?<!\\)((?:\\\\)*)/", r"\1\\/", regex)  # escape unescaped slashes
    return f"/^(?:{body})$/"


# ---- bash ------------------------------------------------------------------------------

# Shell functions the bash renderings call. CICOMPILE_REF_KIND is "branch" or "tag" and
# CICOMPILE_REF_NAME the branch or tag name; the runtime of each target sets both, and
# CICOMPILE_SCHEDULE_NAME to the name of the schedule that started the pipeline (empty when
# none did).
BASH_REF_FUNCTIONS = r"""cc_is() { [[ $CICOMPILE_REF_KIND == "$1" ]]; }
cc_eq() { [[ $CICOMPILE_REF_KIND == "$1" && $CICOMPILE_REF_NAME == "$2" ]]; }
cc_re() { [[ $CICOMPILE_REF_KIND == "$1" && $CICOMPILE_REF_NAME =~ ^($2)$ ]]; }
"""
BASH_SCHEDULE_FUNCTIONS = r"""cc_schedule_eq() { [[ $CICOMPILE_SCHEDULE_NAME == "$1" ]]; }
cc_schedule_re() { [[ -n $CICOMPILE_SCHEDULE_NAME && $CICOMPILE_SCHEDULE_NAME =~ ^($1)$ ]]; }
"""


def _bash_single(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


# The GitHub gate sets CICOMPILE_TRIGGER_SOURCE (GATE_TRIGGER_SOURCE) when a condition reads
# `pipeline.trigger_source`; make and shell pass their own test (push or schedule runs).
GATE_TRIGGER_SOURCE = """# pipeline.trigger_source, from the event that started this run.
case $GITHUB_EVENT_NAME in
  schedule) CICOMPILE_TRIGGER_SOURCE=scheduled_pipeline ;;
  workflow_dispatch | repository_dispatch) CICOMPILE_TRIGGER_SOURCE=api ;;
  *) CICOMPILE_TRIGGER_SOURCE=webhook ;;
esac"""


def gate_trigger_test(source: str) -> str:
    return f"[[ $CICOMPILE_TRIGGER_SOURCE == {source} ]]"


def bash_condition(c: Cond, trigger: Callable[[str], str] = gate_trigger_test) -> str:
    """A bash command list that succeeds iff the condition holds (uses BASH_REF_FUNCTIONS);
    `trigger` renders a `Trigger` atom."""
    match c:
        case Const(value):
            return "true" if value else "false"
        case IsKind(kind):
            return f"cc_is {kind}"
        case Match(kind, pattern):
            if pattern.regex:
                return f"cc_re {kind} {_bash_single(java_to_ere(pattern.text))}"
            return f"cc_eq {kind} {_bash_single(pattern.text)}"
        case Trigger(source):
            return trigger(source)
        case ScheduleName(pattern):
            if pattern.regex:
                name = f"cc_schedule_re {_bash_single(java_to_ere(pattern.text))}"
            else:
                name = f"cc_schedule_eq {_bash_single(pattern.text)}"
            # Only a scheduled pipeline has a schedule, whatever the variable says.
            return f"{{ {trigger(SCHEDULED)} && {name}; }}"
        case Not(atom):
            return "! " + bash_condition(atom, trigger)
        case And(items):
            return "{ " + " && ".join(bash_condition(i, trigger) for i in items) + "; }"
        case Or(items):
            return "{ " + " || ".join(bash_condition(i, trigger) for i in items) + "; }"
    raise AssertionError(c)


# ---- GitLab rules ----------------------------------------------------------------------

_GITLAB_VAR = {RefKind.BRANCH: "$CI_COMMIT_BRANCH", RefKind.TAG: "$CI_COMMIT_TAG"}
# `pipeline.schedule.name`: the description of the GitLab pipeline schedule (GitLab 17.8+).
_GITLAB_SCHEDULE = "$CI_PIPELINE_SCHEDULE_DESCRIPTION"
# `pipeline.trigger_source` as GitLab's pipeline source: (test, its negation).
_GITLAB_API = "/^(api|web|trigger)$/"
_GITLAB_NOT_PUSH = "/^(schedule|api|web|trigger)$/"
_GITLAB_TRIGGER = {
    "scheduled_pipeline": ('$CI_PIPELINE_SOURCE == "schedule"',
                           '$CI_PIPELINE_SOURCE != "schedule"'),
    "api": (f"$CI_PIPELINE_SOURCE =~ {_GITLAB_API}", f"$CI_PIPELINE_SOURCE !~ {_GITLAB_API}"),
    "webhook": (f"$CI_PIPELINE_SOURCE !~ {_GITLAB_NOT_PUSH}",
                f"$CI_PIPELINE_SOURCE =~ {_GITLAB_NOT_PUSH}"),
}


def _gitlab_string(s: str) -> str:
    if '"' not in s:
        return f'"{s}"'
    if "'" not in s:
        return f"'{s}'"
    # Neither quote is free: match the name with an escaped regex instead.
    return java_to_re2_literal(re.escape(s))


def gitlab_condition(c: Cond) -> str:
    """A GitLab `rules:if` expression. Conditions are in negation normal form (no `!` needed)."""
    match c:
        case Const(value):
            # GitLab has no boolean literals; these never reach rules (callers drop/never them).
            raise ValueError(f"constant condition {value} has no GitLab expression")
        case IsKind(kind):
            return _GITLAB_VAR[kind]
        case Trigger(source):
            return _GITLAB_TRIGGER[source][0]
        case Match() | ScheduleName():
            var = _GITLAB_VAR[c.kind] if isinstance(c, Match) else _GITLAB_SCHEDULE
            if c.pattern.regex:
                return f"{var} =~ {java_to_re2_literal(c.pattern.text)}"
            lit = _gitlab_string(c.pattern.text)
            return f"{var} =~ {lit}" if lit.startswith("/") else f"{var} == {lit}"
        case Not(atom):
            if isinstance(atom, IsKind):
                return f"{_GITLAB_VAR[atom.kind]} == null"
            if isinstance(atom, Trigger):
                return _GITLAB_TRIGGER[atom.source][1]
            # Unset on pipelines no schedule started: `!=` and `!~` hold there.
            var = _GITLAB_VAR[atom.kind] if isinstance(atom, Match) else _GITLAB_SCHEDULE
            if atom.pattern.regex:
                return f"{var} !~ {java_to_re2_literal(atom.pattern.text)}"
            lit = _gitlab_string(atom.pattern.text)
            return f"{var} !~ {lit}" if lit.startswith("/") else f"{var} != {lit}"
        case And(items):
            return " && ".join(_paren(i) for i in items)
        case Or(items):
            return " || ".join(_paren(i) for i in items)
    raise AssertionError(c)


def _paren(c: Cond) -> str:
    text = gitlab_condition(c)
    return f"({text})" if isinstance(c, And | Or) else text
