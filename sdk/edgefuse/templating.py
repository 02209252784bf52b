"""The report templates and a tiny renderer for them (standard library only).

Syntax, a small subset of Jinja's:

* ``{{ a.b }}``: the value at that path of the view-model, HTML-escaped. It must be a string: the view-model
  formats every value, so a dict, a list or a number never reaches the page as a Python repr.
* ``{% for x in a.b %}`` ... ``{% endfor %}``; ``{% if a.b %}`` / ``{% if not a.b %}`` ... ``{% else %}`` ...
  ``{% endif %}`` (Python truthiness);
* ``{% macro name %}`` ... ``{% endmacro %}`` and ``{% call name arg=a.b %}``: a macro sees only its arguments;
* ``{# comment #}``. The newline right after a tag or a comment is dropped.

There is no way to insert unescaped text: the markup is the template's, every value the view-model's.
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TemplateError", "render_template"]


class TemplateError(ValueError):
    """A template that does not parse, or a view-model that does not fit it."""


# a comment, {{ path }}, or {% tag %}; the newline right after a comment or a tag is dropped
_TOKEN = re.compile(r"\{#.*?#\}\n?|\{\{\s*(?P<var>[\w.]+)\s*\}\}|\{%\s*(?P<tag>.*?)\s*%\}\n?", re.S)


#: The opening tags and the shape each needs: ``for x in a.b``, ``if [not] a.b``, ``macro name``.
_SHAPES = {
    "for": lambda w: len(w) == 4 and w[2] == "in",
    "if": lambda w: len(w) == 2 or (len(w) == 3 and w[1] == "not"),
    "macro": lambda w: len(w) == 2,
}


def _parse(source: str) -> tuple[list[Any], dict[str, list[Any]]]:
    """Template source -> (nodes, macros).

    Nodes: ``("text", s)``, ``("var", path)``, ``("for", name, path, body)``, ``("if", path, negate, body,
    orelse)``, ``("call", macro, {arg: path})``.
    """
    macros: dict[str, list[Any]] = {}
    stack: list[dict[str, Any]] = [{"tag": ["template"], "body": [], "else": None}]

    def nodes() -> list[Any]:
        top = stack[-1]
        return top["body"] if top["else"] is None else top["else"]

    pos = 0
    for m in _TOKEN.finditer(source):
        nodes().append(("text", source[pos : m.start()]))
        pos = m.end()
        words = (m["tag"] or "").split()
        if m["var"]:
            nodes().append(("var", m["var"]))
        elif not words:
            continue  # a comment
        elif _SHAPES.get(words[0], lambda _w: False)(words):
            stack.append({"tag": words, "body": [], "else": None})
        elif words == ["else"] and stack[-1]["tag"][0] == "if" and stack[-1]["else"] is None:
            stack[-1]["else"] = []
        elif words[0] == "call" and len(words) > 1 and all("=" in w for w in words[2:]):
            nodes().append(("call", words[1], dict(w.split("=", 1) for w in words[2:])))
        elif len(stack) > 1 and words == [f"end{stack[-1]['tag'][0]}"]:
            top = stack.pop()
            tag = top["tag"]
            if tag[0] == "macro":
                macros[tag[1]] = top["body"]
            elif tag[0] == "for":
                nodes().append(("for", tag[1], tag[3], top["body"]))
            else:
                negate = tag[1] == "not"
                nodes().append(("if", tag[-1], negate, top["body"], top["else"] or []))
        else:
            raise TemplateError(f"unexpected {{% {' '.join(words)} %}} (open: {stack[-1]['tag']})")
    nodes().append(("text", source[pos:]))
    if len(stack) > 1:
        raise TemplateError(f"{{% {' '.join(stack[-1]['tag'])} %}} is never closed")
    return stack[0]["body"], macros


def _lookup(scope: Mapping[str, Any], path: str) -> Any:
    value: Any = scope
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise TemplateError(f"{path!r}: the view-model has no {part!r} there")
        value = value[part]
    return value


def _render(
    nodes: Sequence[Any], scope: Mapping[str, Any], macros: Mapping[str, Any], out: list[str]
) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "var":
            value = _lookup(scope, node[1])
            if not isinstance(value, str):  # the view-model formats every value; a repr never slips in
                raise TemplateError(f"{node[1]!r} is a {type(value).__name__}, not text")
            out.append(html.escape(value, quote=True))
        elif kind == "for":
            for item in _lookup(scope, node[2]):
                _render(node[3], {**scope, node[1]: item}, macros, out)
        elif kind == "if":
            _render(node[3] if bool(_lookup(scope, node[1])) != node[2] else node[4], scope, macros, out)
        else:  # a macro sees only its arguments
            if node[1] not in macros:
                raise TemplateError(f"{{% call {node[1]} %}}: no such macro")
            args = {name: _lookup(scope, path) for name, path in node[2].items()}
            _render(macros[node[1]], args, macros, out)


@functools.cache
def _template(name: str) -> tuple[list[Any], dict[str, list[Any]]]:
    source = (importlib.resources.files("edgefuse") / "templates" / name).read_text(encoding="utf-8")
    return _parse(source)


def render_template(name: str, view: Mapping[str, Any]) -> str:
    """Render ``edgefuse/templates/<name>`` with ``view``; every ``{{ value }}`` must be text and is escaped.

    Raises:
        TemplateError: The template does not parse, or names a value the view-model lacks or holds as
            something other than text.
    """
    nodes, macros = _template(name)
    out: list[str] = []
    _render(nodes, view, macros, out)
    return "".join(out)
