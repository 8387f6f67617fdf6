"""The HTML pages the server writes itself: error pages, with everything they show escaped."""

from __future__ import annotations

import html

__all__ = ["error_page"]


def error_page(code: int, brief: str, detail: str) -> bytes:
    """Return the HTML of an error page; every argument is escaped.

    Args:
        code: The status, shown in the title.
        brief: A headline, e.g. ``"No Such Resource"``.
        detail: A sentence or two on what happened; may contain values from the request.
    """
    brief_html = html.escape(brief)
    return (
        "<!DOCTYPE html>\n<html>\n  <head><title>"
        f"{code} - {brief_html}</title></head>\n  <body>\n    <h1>{brief_html}</h1>\n"
        f"    <p>{html.escape(detail)}</p>\n  </body>\n</html>\n"
    ).encode()
