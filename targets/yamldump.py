"""The one configured YAML dumper for the GitHub and GitLab targets.

Readable and stable: insertion order kept, literal blocks for multi-line strings, no aliases,
fixed width; `on` and other YAML 1.1 booleans-in-disguise are quoted by the representer.
"""

from __future__ import annotations

from typing import Any

import yaml
from cicompile.frontend.yaml_loader import MemoisedResolver

# libyaml's emitter (5-10x faster than PyYAML's Python one); both write block sequences
# "indentless" (`key:` then `- item` at the same column), so the output is the same either way.
_Base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class _Dumper(MemoisedResolver, _Base):  # type: ignore[misc]
    def ignore_aliases(self, data: Any) -> bool:
        return True

    def represent_data(self, data: Any) -> yaml.Node:
        # The generated documents are dicts, lists and strings: those are built here directly,
        # with the nodes SafeRepresenter would build (no aliases, block style, keys unsorted);
        # anything else takes the general path.
        kind = type(data)
        if kind is str and self.default_style is None:
            # _str_representer without represent_scalar's bookkeeping (aliases are ignored)
            return yaml.ScalarNode(_STR_TAG, data, style="|" if _literal(data) else None)
        if kind is str:
            return _str_representer(self, data)
        if self.sort_keys or self.default_flow_style is None:  # not how dump_yaml calls it
            return super().represent_data(data)  # type: ignore[no-any-return]
        if kind is dict:
            node = self.represent_data
            return yaml.MappingNode(_MAP_TAG, [(node(k), node(v)) for k, v in data.items()],
                                    flow_style=self.default_flow_style)
        if kind is list:
            node = self.represent_data
            return yaml.SequenceNode(_SEQ_TAG, [node(item) for item in data],
                                     flow_style=self.default_flow_style)
        return super().represent_data(data)  # type: ignore[no-any-return]




def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line scripts read best as literal blocks. A line with trailing spaces cannot be a
    # literal block (the emitter would refuse or the text would change), so such strings keep
    # the emitter's default (quoted) style: the output must say exactly what the config said.
    if _literal(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


def _literal(data: str) -> bool:
    return "\n" in data and not any(line != line.rstrip() for line in data.split("\n"))


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data: Any, header: str = "") -> str:
    text = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=100,
        allow_unicode=True,
        indent=2,
    )
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text
    return text


class Verbatim(str):
    """A number written exactly as the source wrote it (`3.10` must not become `3.1`)."""

    tag = "tag:yaml.org,2002:str"

    def __new__(cls, text: str, tag: str) -> Verbatim:
        self = super().__new__(cls, text)
        self.tag = tag
        return self


def _verbatim_representer(dumper: yaml.SafeDumper, data: Verbatim) -> yaml.ScalarNode:
    # Plain style when the text still resolves to `tag`; the emitter quotes it otherwise.
    return dumper.represent_scalar(data.tag, str(data))


_Dumper.add_representer(Verbatim, _verbatim_representer)
