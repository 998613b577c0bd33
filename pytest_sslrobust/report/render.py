"""Render a report document (results, artifacts, comparison) as one self-contained HTML page."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Mapping
from typing import Any

import jinja2
import markupsafe

from pytest_sslrobust.report.document import ReportDocument
from pytest_sslrobust.report.formatting import format_bounds, format_interval, format_number
from pytest_sslrobust.report.sections import REGISTRY

__all__ = ["SECTIONS", "format_bounds", "format_interval", "format_number", "render_report"]

# Section ids and headings, in page order; a section without data is left out entirely.
SECTIONS: tuple[tuple[str, str], ...] = tuple((section.id, section.title) for section in REGISTRY)


def _breakable(text: Any, words: bool = False) -> markupsafe.Markup:
    """Escaped text with line-break opportunities after ``::``, ``/`` and ``[`` (and ``_``,
    ``-`` with ``words``), so that long node ids and variant ids wrap between their parts
    instead of mid-word. Escaping comes first and leaves none of those characters inside an
    entity, so the inserted ``<wbr>`` is the only markup."""
    escaped = str(markupsafe.escape(str(text)))
    pattern = r"(::|/|\[|_|-)" if words else r"(::|/|\[)"
    return markupsafe.Markup(re.sub(pattern, r"\1<wbr>", escaped))


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_sslrobust", "report/templates"),
        # Every string from tests, parameters and models is escaped; the only markup let
        # through is the plots' SVG, marked |safe in the template where it is inserted.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["breakable"] = _breakable
    return environment


def _script_hash(environment: jinja2.Environment) -> str:
    """The CSP hash of the page's one inline script (the same template the page includes),
    so that the browser runs that script and no other."""
    source = environment.get_template("_script.js.j2").render()
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def render_report(document: Mapping[str, Any]) -> str:
    """The report page for ``document`` (``report.build_document``'s keys).

    Output depends only on ``document``: the same document gives the same bytes.
    """
    environment = _environment()
    typed = ReportDocument.from_dict(document)
    sections = [shown for section in REGISTRY if (shown := section(typed)) is not None]
    return environment.get_template("report.html.j2").render(
        title=typed.title,
        generated=typed.generated,
        script_hash=_script_hash(environment),
        sections=sections,
    )
