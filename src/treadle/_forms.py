"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

Multipart parsing is the ``multipart`` library's (a sans-IO parser with limits); this module
only turns its parts into the ``{name: [value, ...]}`` shape of ``request.args``.
"""

from __future__ import annotations

from typing import IO
from urllib.parse import parse_qs

import multipart

__all__ = ["MAX_FORM_PARTS", "parse_form"]

#: Parts of one multipart body. PHP's max_file_uploads is 20 and its max_input_vars 1000;
#: 1000 parts keep a form of any real size working and a flood of empty parts cheap.
MAX_FORM_PARTS = 1000


def parse_form(content_type: bytes, body: IO[bytes]) -> dict[bytes, list[bytes]]:
    """Parse a form body if ``content_type`` names one; leave ``body`` at its start.

    Returns:
        The arguments found (empty for any other content type).

    Raises:
        treadle.http.MalformedRequestBody: The body does not parse.
    """
    from treadle.http import MalformedRequestBody

    kind, options = multipart.parse_options_header(content_type.decode("latin-1"))
    kind = kind.lower()
    try:
        if kind == "application/x-www-form-urlencoded":
            return parse_qs(body.read(), keep_blank_values=True, strict_parsing=False)
        if kind == "multipart/form-data":
            boundary = options.get("boundary")
            if not boundary:
                raise MalformedRequestBody("multipart body without boundary")
            return _parse_multipart(body, boundary, options.get("charset", "utf-8"))
        return {}
    except (multipart.MultipartError, ValueError) as e:
        if isinstance(e, MalformedRequestBody):
            raise
        raise MalformedRequestBody(f"malformed form body: {e}") from e
    finally:
        body.seek(0)


def _parse_multipart(body: IO[bytes], boundary: str, charset: str) -> dict[bytes, list[bytes]]:
    args: dict[bytes, list[bytes]] = {}
    parser = multipart.MultipartParser(
        body, boundary, charset=charset, strict=True, part_limit=MAX_FORM_PARTS
    )
    for part in parser:
        args.setdefault(part.name.encode("utf-8"), []).append(part.raw)
        part.close()
    return args
