"""The `circleci` / `circleci-agent` shim every target installs in jobs that need it.

One bash script (templates/circleci_shim.sh.j2, semantics §8) is the single source of truth; the
targets only differ in where they write it and how they put it on PATH. A job gets it when it
runs in parallel or its commands call the CircleCI in-job CLI, so other outputs stay small.
"""

from __future__ import annotations

import re
from functools import cache

from cicompile import ir

SHIM_FILE = "circleci_shim.sh.j2"  # plain bash, no jinja (package data is *.j2)
SHIM_DELIMITER = "CICOMPILE_SHIM"

# `circleci tests ...` or `circleci-agent ...` as a command word (not e.g. `mycircleci`).
_USES_CLI = re.compile(r"(?<![\w/.-])circleci(?:-agent\b|\s+tests\b)")
_USES_AGENT = re.compile(r"(?<![\w/.-])circleci-agent\b")


@cache
def shim_text() -> str:
    """The shim script, ending in a newline."""
    from importlib.resources import files  # here: it imports tempfile (cold start)

    return files("cicompile.targets").joinpath("templates", SHIM_FILE).read_text()


def _commands(job: ir.Job) -> list[str]:
    return [s.command for s in job.steps if isinstance(s, ir.Run)]


def _calls(pattern: re.Pattern[str], word: str, text: str) -> bool:
    """`pattern.search(text)` for a pattern whose matches start with WORD: tried only where
    the word is (found by `str.find`). The patterns open with a lookbehind, which makes a
    search try every position of every command; `match` at a position still sees the text
    before it."""
    at = text.find(word)
    while at != -1:
        if pattern.match(text, at):
            return True
        at = text.find(word, at + 1)
    return False


def needs_shim(job: ir.Job) -> bool:
    """Whether the job gets the shim: it is parallel or calls the in-job CLI."""
    return job.parallelism > 1 or any(
        _calls(_USES_CLI, "circleci", c) for c in _commands(job))


def may_halt(job: ir.Job) -> bool:
    """Whether a step may call `circleci-agent step halt` (targets then guard later steps)."""
    return any(_calls(_USES_AGENT, "circleci-agent", c) for c in _commands(job))


def install_script(directory: str) -> str:
    """Bash lines writing the shim as DIRECTORY/circleci and DIRECTORY/circleci-agent.

    DIRECTORY is a shell word (already quoted). The text is one quoted heredoc, so nothing in
    it is expanded on the way.
    """
    assert SHIM_DELIMITER not in shim_text()
    return (
        f"mkdir -p {directory}\n"
        f"cat > {directory}/circleci <<'{SHIM_DELIMITER}'\n"
        f"{shim_text()}"
        f"{SHIM_DELIMITER}\n"
        f"chmod +x {directory}/circleci\n"
        f"cp {directory}/circleci {directory}/circleci-agent\n"
    )
