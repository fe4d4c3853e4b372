"""Parsing CircleCI cache-key templates (`v1-{{ checksum "lock" }}-{{ .Branch }}`) into IR parts."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from cicompile import ir
from cicompile.diagnostics import Diagnostics, Span

if TYPE_CHECKING:
    from lark import Lark

_FIELDS: dict[tuple[str, ...], ir.KeyPart] = {
    ("Branch",): ir.KeyPart(kind="branch"),
    ("Revision",): ir.KeyPart(kind="revision"),
    ("BuildNum",): ir.KeyPart(kind="build_num"),
    ("CheckoutKey",): ir.KeyPart(kind="checkout_key"),
}


@cache
def _parser() -> Lark:
    # lark is imported only when a config has a cache key (keeps `cicompile` start-up fast).
    from lark import Lark

    return Lark.open_from_package("cicompile.frontend", "cache_key.lark", parser="lalr")


def _text_part(token: Any) -> ir.KeyPart:
    return ir.KeyPart(kind="text", value=str(token))


class _ToParts:
    """Tree → parts; a plain visitor over lark's tree (so lark need not load at import)."""

    def transform(self, tree: Any) -> list[ir.KeyPart]:
        return self.start([self._node(c) for c in tree.children])

    def _node(self, node: Any) -> Any:
        from lark import Tree

        if isinstance(node, Tree):
            return getattr(self, str(node.data))([self._node(c) for c in node.children])
        return node

    def start(self, items: list[object]) -> list[ir.KeyPart]:
        out: list[ir.KeyPart] = []
        for it in items:
            part = it if isinstance(it, ir.KeyPart) else _text_part(it)
            assert isinstance(part, ir.KeyPart)
            if part.kind == "text" and out and out[-1].kind == "text":
                out[-1] = ir.KeyPart(kind="text", value=out[-1].value + part.value)
            else:
                out.append(part)
        return out

    def placeholder(self, items: list[ir.KeyPart]) -> ir.KeyPart:
        return items[0]

    def checksum(self, items: list[Any]) -> ir.KeyPart:
        return ir.KeyPart(kind="checksum", value=str(items[0])[1:-1])

    def epoch(self, _: list[Any]) -> ir.KeyPart:
        return ir.KeyPart(kind="epoch")

    def arch(self, _: list[Any]) -> ir.KeyPart:
        return ir.KeyPart(kind="arch")

    def field(self, items: list[Any]) -> ir.KeyPart:
        names = tuple(str(t) for t in items)
        if names in _FIELDS:
            return _FIELDS[names]
        if len(names) == 2 and names[0] == "Environment":
            return ir.KeyPart(kind="env", value=names[1])
        raise ValueError("." + ".".join(names))


def parse_cache_key(text: str, span: Span | None, diags: Diagnostics) -> tuple[ir.KeyPart, ...]:
    """The template's parts; on a bad template, an `invalid-cache-key` error and no parts."""
    if "{{" not in text:
        return (_text_part(text),) if text else ()
    parts, error = _parse(text)
    if error is not None:
        diags.error("invalid-cache-key", error, span)
    return parts


@lru_cache(maxsize=4096)
def _parse(text: str) -> tuple[tuple[ir.KeyPart, ...], str | None]:
    """(parts, None) or ((), the error message). Memoised: it depends only on the text, the
    parts are immutable, and the same keys recur (`save_cache` and `restore_cache` of a job,
    jobs sharing a cache) while lark's parser is most of the cost of reading them."""
    from lark import UnexpectedInput

    try:
        tree = _parser().parse(text)
        return tuple(_ToParts().transform(tree)), None
    except UnexpectedInput as exc:
        col = getattr(exc, "column", 1)
        return (), f"cannot read cache key template {text!r} at column {col}"
    except ValueError as exc:
        inner = exc
        return (), (f"unknown cache key template value {{{{ {inner} }}}}"
                    f" in {text!r}; known: .Branch, .Revision, .BuildNum, .CheckoutKey,"
                    " .Environment.NAME, checksum \"file\", epoch, arch")
