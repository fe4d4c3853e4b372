"""Computing CircleCI cache keys at run time in bash (shared by every target).

CircleCI evaluates key templates when the step runs (semantics §4), so every target computes
them in a shell step. `checksum` is the SHA-256 of the file in hex (CircleCI prints base64,
which has `/` and `+`, invalid in some targets' keys); only equality between save and restore
matters, and both use this same function.
"""

from __future__ import annotations

from functools import cache, lru_cache

from cicompile import ir
from cicompile.targets.base import path_quote

CHECKSUM_FUNCTION = 'cc_checksum() { sha256sum < "$1" | cut -c1-64; }'

_VARS = {
    "branch": "${CIRCLE_BRANCH:-}",
    "revision": "${CIRCLE_SHA1:-}",
    "build_num": "${CIRCLE_BUILD_NUM:-}",
    "checkout_key": "",
}


def _dq(text: str) -> str:
    """Text made safe inside a bash double-quoted string."""
    for c in ("\\", '"', "$", "`"):
        text = text.replace(c, "\\" + c)
    return text


def cache_key_lines(keys: list[tuple[ir.KeyPart, ...]], prefix: str = "key") -> list[str]:
    """Bash lines that set `${prefix}0`, `${prefix}1`, … to the evaluated templates.

    Command substitutions get their own assignments first, so `set -e` stops the step when a
    checksum file is missing (as CircleCI fails the step).
    """
    return list(_key_lines(tuple(keys), prefix))


# Memoised: the same keys recur in a config's jobs (a save and its restores, shared commands).
@lru_cache(maxsize=1024)
def _key_lines(keys: tuple[tuple[ir.KeyPart, ...], ...], prefix: str) -> tuple[str, ...]:
    lines: list[str] = []
    computed: dict[tuple[str, str], str] = {}
    for i, parts in enumerate(keys):
        word = []
        for part in parts:
            if part.kind == "text":
                word.append(_dq(part.value))
            elif part.kind in _VARS:
                word.append(_VARS[part.kind])
            elif part.kind == "env":
                word.append("${" + part.value + ":-}")
            else:
                ident = (part.kind, part.value)
                if ident not in computed:
                    var = f"cc_{part.kind}{len(computed)}"
                    computed[ident] = var
                    if part.kind == "checksum":
                        lines.append(f"{var}=$(cc_checksum {path_quote(part.value)})")
                    elif part.kind == "epoch":
                        lines.append(f"{var}=$(date +%s)")
                    else:  # arch
                        os_arch = "$(uname -s | tr '[:upper:]' '[:lower:]')"
                        os_arch += "-$(uname -m)"
                        lines.append(f'{var}="{os_arch}"')
                word.append("${" + computed[ident] + "}")
        lines.append(f'{prefix}{i}="{"".join(word)}"')
    return tuple(lines)


def needs_checksum(keys: list[tuple[ir.KeyPart, ...]]) -> bool:
    return any(p.kind == "checksum" for parts in keys for p in parts)


@cache
def cache_store_functions() -> str:
    """The POSIX-sh cache store: CircleCI's immutable saves and prefix/newest restores over a
    directory, shared by the make, shell and GitLab targets. `templates/cache_store.sh.j2` is
    plain sh read verbatim (named .j2 so it ships with the other templates)."""
    from importlib.resources import files  # here: it imports tempfile (cold start)

    text = files("cicompile.targets.templates").joinpath("cache_store.sh.j2").read_text()
    return text.rstrip("\n")


def cache_step_lines(
    step: ir.SaveCache | ir.RestoreCache,
    store: str,
    roots: list[str],
    paths: list[str],
) -> list[str]:
    """The bash of one cache step over the store (`cache_store_functions`): compute the keys,
    then save or restore.

    `store` and `roots` (`"NAME=DIR"` words) are shell words of the target; `paths` are the
    save's paths as shell words naming absolute paths (ignored for a restore).
    """
    if isinstance(step, ir.SaveCache):
        lines = cache_key_lines([step.key_parts])
        call = ["cc_cache_save", store, '"$key0"', *roots, "--", *paths]
    else:
        lines = cache_key_lines(list(step.key_parts))
        keys = [f'"$key{i}"' for i in range(len(step.key_parts))]
        call = ["cc_cache_restore", store, *roots, "--", *keys]
    return [*lines, " ".join(call)]
