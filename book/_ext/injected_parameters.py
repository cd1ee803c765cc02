"""Sphinx extension: papermill's injected-parameters cell never shows on a page.

papermill adds a cell tagged ``injected-parameters`` after a chapter's parameters cell, repeating the values the
build passed. The set-up block already shows the parameters, and the page says which profile it was built with, so
the repeated cell is plumbing: it is removed from every page (the downloaded notebook keeps it).
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform

TAG_CLASS = "tag_injected-parameters"  # myst-nb gives a cell's container a class per tag


class RemoveInjectedParameters(SphinxTransform):
    """Remove every cell container carrying the injected-parameters tag."""

    default_priority = 199

    def apply(self, **kwargs: Any) -> None:
        for node in list(self.document.findall(nodes.container)):
            if TAG_CLASS in node.get("classes", []):
                node.parent.remove(node)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_transform(RemoveInjectedParameters)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
