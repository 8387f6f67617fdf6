"""The HTML pages the server writes itself, byte for byte as Twisted Web writes them.

Clients and tests written against Twisted compare these pages, so their layout (even the
leading newline of the error page) is Twisted's. The one difference is escaping: Twisted puts
an error page's texts in as they are, so a brief or detail holding a request value could
inject markup; here ``&``, ``<`` and ``>`` are always escaped in text. Quotes are left alone in
text (they cannot break out of an element's content), so a text without ``&<>`` gives exactly
Twisted's bytes.
"""

from __future__ import annotations

import html
from typing import Final

__all__ = [
    "error_page",
    "error_page_markup",
    "escape_attribute",
    "escape_text",
    "flat_error_page",
    "processing_failed_page",
    "redirect_page",
    "traceback_page",
]


def escape_text(text: str) -> str:
    """Escape ``text`` for an element's content: ``&``, ``<`` and ``>`` (quotes stay)."""
    return html.escape(text, quote=False)


def escape_attribute(text: str) -> str:
    """Escape ``text`` for a double- or single-quoted attribute value (quotes too)."""
    return html.escape(text, quote=True)


def error_page_markup(code: int, brief_html: str, detail_html: str) -> bytes:
    """Return the classic error page (Twisted's ``resource.ErrorPage``) from ready markup.

    Args:
        code: The status, shown in the title before the brief.
        brief_html: The headline, already escaped (it is used as it is, twice).
        detail_html: The paragraph's content, already escaped markup.
    """
    return (
        f"\n<html>\n  <head><title>{code} - {brief_html}</title></head>\n  <body>\n"
        f"    <h1>{brief_html}</h1>\n    <p>{detail_html}</p>\n  </body>\n</html>\n"
    ).encode()


def error_page(code: int, brief: str, detail: str) -> bytes:
    """Return the classic error page for plain texts, which are escaped.

    Args:
        code: The status, shown in the title.
        brief: A headline, e.g. ``"No Such Resource"``.
        detail: A sentence or two on what happened; may contain values from the request.
    """
    return error_page_markup(code, escape_text(brief), escape_text(detail))


def flat_error_page(code: int, brief: str, detail: str) -> bytes:
    """Return the error page of ``twisted.web.pages.errorPage`` (a doctype, one line).

    Args:
        code: The status, shown in the title.
        brief: The headline (escaped here).
        detail: The paragraph (escaped here).
    """
    brief_html = escape_text(brief)
    return (
        f"<!DOCTYPE html>\n<html><head><title>{code} - {brief_html}</title></head>"
        f"<body><h1>{brief_html}</h1><p>{escape_text(detail)}</p></body></html>"
    ).encode()


def redirect_page(url: bytes) -> bytes:
    """Return the page sent with a redirect (``util.redirectTo``'s): a refresh and a link.

    Args:
        url: The target; escaped for the attributes it appears in (undecodable bytes are
            replaced, the ``Location`` header carries the exact URL).
    """
    target = escape_attribute(url.decode("utf-8", "replace"))
    return (
        "\n<html>\n    <head>\n"
        f'        <meta http-equiv="refresh" content="0;URL={target}">\n'
        '    </head>\n    <body bgcolor="#FFFFFF" text="#000000">\n'
        f'    <a href="{target}">click here</a>\n    </body>\n</html>\n'
    ).encode()


_PROCESSING_FAILED: Final = (
    b"<html><head><title>Processing Failed</title></head>"
    b"<body><b>Processing Failed</b></body></html>"
)

_TRACEBACK_HEADING: Final = "web.Server Traceback (most recent call last)"


def processing_failed_page() -> bytes:
    """Return the 500 page for an unhandled error when tracebacks are not shown."""
    return _PROCESSING_FAILED


def traceback_page(traceback_text: str) -> bytes:
    """Return the 500 page for an unhandled error on a site that shows tracebacks.

    The frame is Twisted's (title and heading); the traceback is Python's own text, escaped,
    in a ``<pre>``.
    """
    return (
        f"<html><head><title>{_TRACEBACK_HEADING}</title></head>"
        f"<body><b>{_TRACEBACK_HEADING}:</b>\n\n<pre>{escape_text(traceback_text)}</pre>"
        "\n\n</body></html>\n"
    ).encode("ascii", "xmlcharrefreplace")  # served without a charset: ASCII, as Twisted
