"""What a report section is: its id and heading, its payloads, how it renders, its template."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.document import Payload, ReportDocument

if TYPE_CHECKING:
    from pytest_sslrobust.report.chance import ChanceCheck
    from pytest_sslrobust.report.headlines import Headline

__all__ = ["Section"]


@dataclasses.dataclass(frozen=True)
class Section:
    """One section of the page.

    ``id`` is the HTML id and anchor, ``title`` the heading; ``payloads`` the payload types
    of the artifacts it shows (by their ``KIND``); ``render`` gives its template context, or
    None when the document holds nothing for it (the section is left out); ``template`` is
    the one that lays it out. ``headlines`` gives the study's headline numbers for the
    summary at the top of the page (a row per number, a value per model) and ``checks`` the
    clean accuracies it recorded with their chance level (``report.chance``).
    """

    name: str
    id: str
    title: str
    render: Callable[[ReportDocument], dict[str, Any] | None]
    payloads: tuple[type[Payload], ...] = ()
    template: str = "_blocks.html.j2"
    headlines: Callable[[ReportDocument], list[Headline]] | None = None
    checks: Callable[[ReportDocument], list[ChanceCheck]] | None = None

    def __call__(self, document: ReportDocument | Mapping[str, Any]) -> dict[str, Any] | None:
        """The section's template context for ``document`` (typed, or as plain JSON)."""
        if not isinstance(document, ReportDocument):
            document = ReportDocument.from_dict(document)
        shown = self.render(document)
        if shown is None:
            return None
        return {"id": self.id, "title": self.title, "template": self.template, **shown}
