"""report.html from the Jinja2 template ``templates/report.html.j2`` (shipped inside the package).

Autoescape is on, and every ``{{ value }}`` goes through :func:`escape`: :func:`html.escape` with quotes,
the escaping this report has always had (it writes ``'`` as ``&#x27;``, where Jinja's default writes
``&#39;``; both are strict). Only :class:`~markupsafe.Markup` passes as is: the SVG charts written in
:mod:`billing.report.charts` and the templates' own macros. No clock, no random ids: the same page
for the same data, byte for byte.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any

import pyarrow as pa
from jinja2 import Environment, PackageLoader, StrictUndefined
from jinja2.ext import Extension
from markupsafe import Markup

from billing.report.page import page

TEMPLATE = "report.html.j2"
_LINE_BREAK = re.compile(r"\n[ \t]*")


class OneLine(Extension):
    """Line breaks in a ``.j2`` template, with the indentation after them, are layout for the reader:
    they are dropped before parsing, so the page comes out on one line. Included ``.css`` and ``.js``
    files keep theirs."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return _LINE_BREAK.sub("", source) if name is not None and name.endswith(".j2") else source


def escape(value: Any) -> Markup:
    """A ``{{ value }}`` as HTML: Markup we generated as is; anything else as text (None as nothing), escaped."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


@functools.cache
def environment() -> Environment:
    return Environment(loader=PackageLoader("billing.report", "templates"), autoescape=True, finalize=escape,
                       undefined=StrictUndefined, keep_trailing_newline=True, extensions=[OneLine],
                       auto_reload=False)


def render_html(*, summary: dict[str, Any], hours: list[dict[str, int]], ads: list[dict[str, Any]],
                quarantine: pa.Table, conflicts: pa.Table, inputs: dict[str, Any], code_version: str) -> str:
    """The page of one day's outputs: ``hours`` and ``ads`` come from :mod:`billing.report.aggregates`
    (``ads``: every ad, or at least the candidates of the top-ads tables,
    :func:`~billing.report.aggregates.top_ads`)."""
    p = page(summary=summary, hours=hours, ads=ads, quarantine=quarantine, conflicts=conflicts, inputs=inputs,
             code_version=code_version)
    return environment().get_template(TEMPLATE).render(p=p)
