# Echo a submitted form.
#
# request.args maps each argument name to the list of its values, all bytes; it merges the
# query string with an application/x-www-form-urlencoded or multipart/form-data body. For a
# file field the value is the file's content. Everything is escaped before it goes into the
# page: a form is input from anyone.

from html import escape

from twisted.web.resource import Resource

PREVIEW = 200  # bytes of an uploaded file shown


def _show(value):
    text = value[:PREVIEW].decode("utf-8", "replace")
    more = f" &hellip; ({len(value)} bytes)" if len(value) > PREVIEW else ""
    return escape(text) + more


class FormEcho(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.redirect(b"form.html")
        return b""

    def render_POST(self, request):
        kind = request.getHeader(b"content-type") or b"(none)"
        rows = "".join(
            f"<tr><th>{escape(name.decode('utf-8', 'replace'))}</th>"
            f"<td>{'<br>'.join(_show(v) for v in values)}</td></tr>"
            for name, values in sorted(request.args.items())
        ) or '<tr><td colspan="2">(no arguments)</td></tr>'
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            "<!DOCTYPE html><html><head><title>What you sent</title>"
            '<link rel="stylesheet" href="style.css"></head><body>'
            "<h1>What you sent</h1>"
            f"<p>Content-Type: <code>{escape(kind.decode('latin-1'))}</code></p>"
            f"<table>{rows}</table>"
            '<p><a href="form.html">Send another</a> &middot; '
            '<a href=".">Back to the examples</a></p></body></html>'
        ).encode()


resource = FormEcho()
