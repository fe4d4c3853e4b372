"""Registry orbs read from a directory on disk (`--orb-dir DIR`), so 2.1 expansion stays offline.

Layout of DIR (docs/orbs.md), for an orb imported as `ns/name@1.2.3`, first match wins:

    DIR/ns/name@1.2.3.yml        packed orb source, as the registry serves it (`orbs fetch`)
    DIR/ns/name@1.2.3/           unpacked orb source tree (`src/@orb.yml` or `@orb.yml`)
    DIR/ns/name.yml              packed, any version (a pinned copy of your choice)
    DIR/ns/name/                 unpacked, any version
    DIR/orbs.lock                JSON written by `cicompile orbs fetch`: the sha256 of each
                                 fetched file, checked here on every read

The version part is the one written in the config (`@5`, `@volatile`, `@1.2.3`), so a file
fetched for a config is found again by that config without asking the registry.

An unpacked tree is packed the way `circleci orb pack` does: `@orb.yml` is the root, each
`commands/`, `jobs/`, `executors/` file `x.yml` becomes the element `x`, `examples/` is
ignored, and a value that is exactly `<<include(path)>>` becomes the text of that file
(relative to the `@orb.yml` folder; it may not leave that folder).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import field
from pathlib import Path

from cicompile.diagnostics import ConfigError, Diagnostics, Span
from cicompile.frontend.yaml_loader import YMap, YNode, YScalar, YSeq, load_yaml
from cicompile.records import dataclass

LOCK_FILE = "orbs.lock"
# Said by every `unsupported-orb` warning: how to make the source available.
PROVIDE_HINT = ("give its source with `--orb-dir DIR` (`cicompile orbs fetch CONFIG --orb-dir DIR`"
                " downloads it)")
ELEMENT_DIRS = ("commands", "jobs", "executors")
_REF = re.compile(r"(?P<ns>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+)(?:@(?P<version>\S+))?")
_INCLUDE = re.compile(r"<<\s*include\(([^)]*)\)\s*>>")


def parse_ref(ref: str) -> tuple[str, str, str | None] | None:
    """(namespace, name, version or None) of `ns/name@version`; None if it is not one."""
    m = _REF.fullmatch(ref.strip())
    if m is None:
        return None
    return m.group("ns"), m.group("name"), m.group("version")


def sha256_text(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_lock(orb_dir: Path) -> dict[str, dict[str, str]]:
    """The lock file's entries (orb ref → {version, file, sha256}); {} when there is none.
    Raises ValueError when it exists but is not a lock file."""
    path = orb_dir / LOCK_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    orbs = data.get("orbs") if isinstance(data, dict) else None
    if not isinstance(orbs, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("file"), str)
        for v in orbs.values()
    ):
        raise ValueError("expected {\"orbs\": {ref: {\"file\", \"sha256\", ...}}}")
    return orbs


@dataclass
class OrbSources:
    """Finds, verifies, packs and parses orb sources under one directory (results cached)."""

    root: Path
    diags: Diagnostics
    _cache: dict[str, YMap | None] = field(default_factory=dict)
    _lock: dict[str, dict[str, str]] | None = None

    def load(self, ref: str, span: Span) -> YMap | None:
        """The packed orb for `ref` as a positioned tree; None when DIR does not have it.
        Problems with a source that is there are errors (ConfigError is not raised here)."""
        if ref not in self._cache:
            self._cache[ref] = self._load(ref, span)
        return self._cache[ref]

    def candidates(self, ref: str) -> list[Path]:
        parsed = parse_ref(ref)
        if parsed is None:
            return []
        ns, name, version = parsed
        base = self.root / ns
        exact = [base / f"{name}@{version}.yml", base / f"{name}@{version}"] if version else []
        return [*exact, base / f"{name}.yml", base / name]

    def _load(self, ref: str, span: Span) -> YMap | None:
        for path in self.candidates(ref):
            try:
                if path.is_file():
                    return self._packed(path, span)
                if path.is_dir():
                    return self._tree(path, span)
            except ConfigError:
                return None  # the loader recorded why
            except (OSError, UnicodeDecodeError) as exc:
                self.diags.error("orb-source", f"cannot read the orb {ref} from {path}: {exc}",
                                 span)
                return None
        return None

    def _packed(self, path: Path, span: Span) -> YMap | None:
        data = path.read_bytes()
        if not self._verify(path, data, span):
            return None
        return self._yaml(data.decode("utf-8"), path, span)

    def _yaml(self, text: str, path: Path, span: Span) -> YMap | None:
        node = load_yaml(text, str(path), self.diags)
        if not isinstance(node, YMap):
            self.diags.error("orb-source", f"{path} is not an orb (a YAML mapping)", span)
            return None
        return node

    def _verify(self, path: Path, data: bytes, span: Span) -> bool:
        """A fetched file must still be what the lock file recorded (reproducible builds)."""
        try:
            if self._lock is None:
                self._lock = read_lock(self.root)
        except (ValueError, OSError) as exc:
            self.diags.error("orb-lock", f"{self.root / LOCK_FILE} is not a valid lock file"
                             f" ({exc})", span)
            self._lock = {}
            return False
        rel = path.relative_to(self.root).as_posix()
        for ref, entry in self._lock.items():
            if entry["file"] == rel and entry["sha256"] != sha256_text(data):
                self.diags.error("orb-lock", f"{path} does not match its entry {ref!r} in"
                                 f" {LOCK_FILE} (sha256 differs): it changed since it was"
                                 " fetched; fetch it again with `cicompile orbs fetch`", span)
                return False
        return True

    # ---- unpacked source trees (`circleci orb pack`) ----------------------------------

    def _tree(self, path: Path, span: Span) -> YMap | None:
        src = path / "src" if (path / "src" / "@orb.yml").is_file() else path
        orb_file = src / "@orb.yml"
        if not orb_file.is_file():
            self.diags.error("orb-source", f"{path} has no src/@orb.yml (an unpacked orb)", span)
            return None
        root = self._yaml(orb_file.read_text(encoding="utf-8"), orb_file, span)
        if root is None:
            return None
        pairs = list(root.pairs)
        for kind in ELEMENT_DIRS:
            files = sorted((src / kind).glob("*.yml")) + sorted((src / kind).glob("*.yaml"))
            if not files:
                continue
            elements = [(YScalar(f.stem, f.stem, Span(str(f), 1, 1)), self._element(f, span))
                        for f in files]
            pairs = self._add_table(pairs, kind, elements, Span(str(src / kind), 1, 1))
        packed = self._includes(YMap(tuple(pairs), root.span), src, span)
        assert isinstance(packed, YMap)  # includes replace scalars only
        return packed

    def _element(self, path: Path, span: Span) -> YNode:
        node = load_yaml(path.read_text(encoding="utf-8"), str(path), self.diags)
        return node if node is not None else YScalar(None, "", Span(str(path), 1, 1))

    @staticmethod
    def _add_table(pairs: list[tuple[YScalar, YNode]], kind: str,
                   elements: list[tuple[YScalar, YNode]], span: Span
                   ) -> list[tuple[YScalar, YNode]]:
        """Add the elements of one folder under `kind`, after any @orb.yml already defines."""
        for i, (k, v) in enumerate(pairs):
            if k.as_str() == kind and isinstance(v, YMap):
                pairs[i] = (k, YMap((*v.pairs, *elements), v.span))
                return pairs
        return [*pairs, (YScalar(kind, kind, span), YMap(tuple(elements), span))]

    def _includes(self, node: YNode, src: Path, span: Span) -> YNode:
        if isinstance(node, YSeq):
            return YSeq(tuple(self._includes(i, src, span) for i in node.items), node.span)
        if isinstance(node, YMap):
            return YMap(tuple((k, self._includes(v, src, span)) for k, v in node.pairs),
                        node.span)
        if not isinstance(node.value, str) or "include(" not in node.value:
            return node
        m = _INCLUDE.fullmatch(node.value.strip())
        if m is None:
            if _INCLUDE.search(node.value):
                self.diags.error("orb-source", "`<<include(…)>>` must be the whole value (as"
                                 " `circleci orb pack` requires)", node.span)
            return node
        target = (src / m.group(1).strip()).resolve()
        if not target.is_relative_to(src.resolve()) or not target.is_file():
            self.diags.error("orb-source", f"`{m.group(0)}`: no file {m.group(1)!r} inside"
                             f" {src}", node.span)
            return node
        text = target.read_text(encoding="utf-8")
        return YScalar(text, text, node.span, True)
