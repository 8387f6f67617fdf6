"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

Multipart parsing is the ``multipart`` library's (a sans-IO parser with limits); this module
only turns its parts into the ``{name: [value, ...]}`` shape of ``request.args``.
"""

from __future__ import annotations

from typing import IO
from urllib.parse import unquote_to_bytes

import multipart

__all__ = ["MAX_FORM_PARTS", "MalformedRequestBody", "parse_form", "parse_urlencoded"]


class MalformedRequestBody(ValueError):
    """A form body (urlencoded or multipart) could not be parsed; answered with 400.

    Code imports it from :mod:`treadle.web.http`.
    """


#: Parts of one multipart body. PHP's max_file_uploads is 20 and its max_input_vars 1000;
#: 1000 parts keep a form of any real size working and a flood of empty parts cheap.
MAX_FORM_PARTS = 1000


def parse_form(content_type: bytes, body: IO[bytes]) -> dict[bytes, list[bytes]]:
    """Parse a form body if ``content_type`` names one; leave ``body`` at its start.

    Returns:
        The arguments found (empty for any other content type).

    Raises:
        MalformedRequestBody: The body does not parse.
    """
    kind = content_type.partition(b";")[0].strip().lower()
    try:
        if kind == b"application/x-www-form-urlencoded":
            return parse_urlencoded(body.read())
        if kind == b"multipart/form-data":
            _, options = multipart.parse_options_header(content_type.decode("latin-1"))
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


def parse_urlencoded(data: bytes) -> dict[bytes, list[bytes]]:
    """Parse ``a=1&b=2`` (query strings and urlencoded bodies) into ``{name: [values]}``.

    Same result as ``urllib.parse.parse_qs(data, keep_blank_values=True)``, about three times
    faster on the usual input: decoding runs only on the fields that need it.
    """
    args: dict[bytes, list[bytes]] = {}
    for field in data.split(b"&"):
        if not field:
            continue
        name, _, value = field.partition(b"=")
        if b"+" in field or b"%" in field:
            name = unquote_to_bytes(name.replace(b"+", b" "))
            value = unquote_to_bytes(value.replace(b"+", b" "))
        values = args.get(name)
        if values is None:
            args[name] = [value]
        else:
            values.append(value)
    return args


def _parse_multipart(body: IO[bytes], boundary: str, charset: str) -> dict[bytes, list[bytes]]:
    args: dict[bytes, list[bytes]] = {}
    parser = multipart.MultipartParser(
        body, boundary, charset=charset, strict=True, part_limit=MAX_FORM_PARTS
    )
    for part in parser:
        args.setdefault(part.name.encode("utf-8"), []).append(part.raw)
        part.close()
    return args
