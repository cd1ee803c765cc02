"""Sphinx extension: each page gets every inline <script> once.

Why: Sphinx 7.4 registers a script added after the builder started twice (once with the file name
None, once with ''), so inline scripts such as sphinx-thebe's `const THEBE_JS_URL = ...` appear twice
and the browser logs "SyntaxError: Identifier 'THEBE_JS_URL' has already been declared" on every
page. Sphinx 8.2 fixed it (sphinx-doc/sphinx pull request 13402); Jupyter Book 1.x needs Sphinx < 8.
Remove this extension once the book builds with a Sphinx that has the fix.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Drop repeated entries of the page's script list (same file or body, same attributes), in place."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for script in scripts:
        key = (str(script.filename or ""), tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    # After every other handler (myst-nb adds a page's widget scripts in this same event).
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
