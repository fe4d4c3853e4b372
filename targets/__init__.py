"""Target registry: one module per target, looked up by name (the `--target` choices)."""

from __future__ import annotations

from cicompile.targets.base import Target


def get_target(name: str) -> Target:
    # Imported lazily so `cicompile --target github` does not load jinja2 and friends.
    if name == "github":
        from cicompile.targets.github import GitHubTarget

        return GitHubTarget()  # noqa: RET504
    if name == "gitlab":
        from cicompile.targets.gitlab import GitLabTarget

        return GitLabTarget()
    if name == "make":
        from cicompile.targets.make import MakeTarget

        return MakeTarget()
    if name == "shell":
        from cicompile.targets.shell import ShellTarget

        return ShellTarget()
    if name == "circleci":
        from cicompile.targets.circleci import CircleCITarget

        return CircleCITarget()
    raise KeyError(name)


TARGET_NAMES: tuple[str, ...] = ("github", "gitlab", "make", "shell", "circleci")
