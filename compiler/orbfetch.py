"""`cicompile orbs fetch`: download the registry orbs a config imports into an --orb-dir.

Each orb is asked from CircleCI's public GraphQL API (`orbVersion(orbVersionRef)`), written
as packed YAML to `DIR/<ns>/<name>@<version as written>.yml` (the layout `orbsource.py`
reads) and recorded in `DIR/orbs.lock` with the version the registry resolved and the
sha256 of the file, so later compilations are reproducible and verified. Orbs imported by
fetched orbs are fetched too. Only urllib: no new dependency.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import field
from pathlib import Path

from cicompile.diagnostics import ConfigError, Diagnostics
from cicompile.frontend.orbsource import LOCK_FILE, parse_ref, read_lock, sha256_text
from cicompile.frontend.yaml_loader import YMap, YScalar, load_yaml
from cicompile.records import dataclass

DEFAULT_REGISTRY = "https://circleci.com"
QUERY = ("query($orbVersionRef: String!) { orbVersion(orbVersionRef: $orbVersionRef)"
         " { id version source } }")
TIMEOUT_SECONDS = 30


class FetchError(Exception):
    """A problem worth one clean error line (network, HTTP status, unexpected answer)."""


@dataclass
class Fetched:
    ref: str
    version: str
    file: str  # relative to the orb dir
    sha256: str


@dataclass
class FetchResult:
    fetched: list[Fetched] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # refs that are not fixed strings


def orb_refs(root: YMap) -> tuple[list[str], list[str]]:
    """Registry orb references under `orbs:` (inline orbs' imports included), and the ones
    that cannot be fetched as written (`<< pipeline.parameters.x >>` versions)."""
    refs: list[str] = []
    skipped: list[str] = []
    orbs = root.get("orbs")
    if not isinstance(orbs, YMap):
        return refs, skipped
    for _, v in orbs.pairs:
        if isinstance(v, YMap):  # an inline orb may import registry orbs itself
            inner, inner_skipped = orb_refs(v)
            refs += inner
            skipped += inner_skipped
        elif isinstance(v, YScalar):
            text = v.as_str().strip()
            (refs if parse_ref(text) and "<<" not in text else skipped).append(text)
    return refs, skipped


def query_registry(registry: str, ref: str) -> tuple[str, str]:
    """(resolved version, packed source) of `ref`; FetchError on any problem."""
    url = registry.rstrip("/") + "/graphql-unstable"
    body = json.dumps({"query": QUERY, "variables": {"orbVersionRef": ref}}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json",
        "User-Agent": "cicompile"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url} answered HTTP {exc.code} ({exc.reason}) for {ref}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"cannot reach {url} for {ref}: {reason}") from exc
    return _answer(raw, url, ref)


def _answer(raw: bytes, url: str, ref: str) -> tuple[str, str]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FetchError(f"{url} did not answer JSON for {ref}") from exc
    if not isinstance(data, dict):
        raise FetchError(f"{url} gave an unexpected answer for {ref}")
    if data.get("errors"):
        errors = data["errors"]
        first = errors[0].get("message") if isinstance(errors, list) and errors and isinstance(
            errors[0], dict) else errors
        raise FetchError(f"the registry refused {ref}: {first}")
    orb = (data.get("data") or {}).get("orbVersion") if isinstance(data.get("data"),
                                                                    dict | None) else None
    if orb is None:
        raise FetchError(f"the registry has no orb {ref}")
    if not isinstance(orb, dict) or not isinstance(orb.get("source"), str) or not isinstance(
            orb.get("version"), str):
        raise FetchError(f"{url} gave an unexpected answer for {ref}")
    return orb["version"], orb["source"]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _imports(source: str, ref: str) -> tuple[list[str], list[str]]:
    diags = Diagnostics()
    try:
        root = load_yaml(source, ref, diags)
    except ConfigError as exc:
        raise FetchError(f"the source of {ref} is not valid YAML") from exc
    return orb_refs(root) if isinstance(root, YMap) else ([], [])


def fetch_orbs(refs: Iterable[str], orb_dir: Path, registry: str) -> FetchResult:
    """Fetch `refs` and the orbs they import into `orb_dir`; update the lock file last, so
    an interrupted fetch leaves the old lock (and the old files still verify or fail loud)."""
    result = FetchResult()
    queue = list(dict.fromkeys(refs))
    seen: set[str] = set()
    while queue:
        ref = queue.pop(0)
        if ref in seen:
            continue
        seen.add(ref)
        parsed = parse_ref(ref)
        assert parsed is not None  # orb_refs keeps only `ns/name[@version]`
        ns, name, version = parsed
        version_text, source = query_registry(registry, ref)
        data = source.encode("utf-8")
        # Named by the version as written, so the config that asked for it finds it again.
        rel = f"{ns}/{name}@{version}.yml" if version else f"{ns}/{name}.yml"
        _write(orb_dir / rel, data)
        result.fetched.append(Fetched(ref, version_text, rel, sha256_text(data)))
        inner, skipped = _imports(source, ref)
        queue += inner
        result.skipped += skipped
    _write_lock(orb_dir, result.fetched)
    return result


def _write_lock(orb_dir: Path, fetched: list[Fetched]) -> None:
    try:
        entries = read_lock(orb_dir)
    except (ValueError, OSError):
        entries = {}  # a broken lock is replaced by the one we know is right
    for f in fetched:
        entries[f.ref] = {"version": f.version, "file": f.file, "sha256": f.sha256}
    text = json.dumps({"lockfileVersion": 1, "orbs": dict(sorted(entries.items()))}, indent=2)
    _write(orb_dir / LOCK_FILE, (text + "\n").encode("utf-8"))
