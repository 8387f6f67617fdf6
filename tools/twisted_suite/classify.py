"""Classify what fails among the ported Twisted tests, and print the per-module table.

internal: the test uses a private name of Twisted's or its implementation's structure;
harness: the failure comes from the porting itself (a message naming ``twisted.*``);
deliberate: a difference README.md's "Differences from Twisted Web" lists; public: the rest.
"""

import json
import re
import sys

# (module, test-name regex) -> (category, reason)
RULES = [
    # internals: private names and implementation structure
    (
        "*",
        r"_channel|Chunked|IdentityTransfer|_generic|_optimistic|_requestProducer|_transferDecoder",
        "internal",
        "Twisted's private channel/decoder classes and attributes",
    ),
    (
        "test_static",
        r"RangeTests\.test_(invalidRanges|multipleRanges|nullRangeElements|range|rangeMissingStart|rangeMissingStop|rangeWithSpace)$",
        "internal",
        "File._parseRangeHeader (private)",
    ),
    (
        "test_static",
        r"DirectoryListerTests\.test_(brokenSymlink|mimeTypeAndEncodings|oddAndEven)$",
        "internal",
        "DirectoryLister._getFilesAndDirectories/_buildTableContent (private)",
    ),
    ("test_web", r"LogEscapingTests", "internal", "sets the private HTTPFactory._logDateTime"),
    ("test_web", r"test_sessionUIDGeneration", "internal", "Site._entropy (private)"),
    ("test_http_headers", r"NameEncoderTests", "internal", "http_headers._nameEncoder (private)"),
    (
        "test_wsgi",
        r"StartResponseTests\.test_(headers|applicationProvidedContentType|applicationProvidedServerAndDate)$",
        "internal",
        "patches server.datetimeToString, which treadle's cached Date never reads",
    ),
    (
        "test_httpauth",
        r"test_selectParseResponse",
        "internal",
        "HTTPAuthSessionWrapper._selectParseHeader (private)",
    ),
    ("test_defer", r"test_DEFERRED_SUBCLASSES", "internal", "defer._DEFERRED_SUBCLASSES (private)"),
    (
        "test_http",
        r"ParsingTests\.test_chunkedEncoding$",
        "internal",
        "reads channel._transferDecoder (private)",
    ),
    (
        "test_http",
        r"ParsingTests\.test_basicAuthException$",
        "internal",
        "patches base64.b64decode inside Twisted's implementation",
    ),
    # harness artifacts
    (
        "test_http",
        r"test_noLongerQueued$",
        "harness",
        "expects the deprecation text to name twisted.*",
    ),
    (
        "test_util",
        r"test_sourceFragmentElement",
        "harness",
        "the port's ast.unparse changes the test's own source lines, which it reads back",
    ),
    (
        "*",
        r"test_(deprecatedTimeout|deferredDeprecation|addSlashDeprecated|callbacksAttributeDeprecated)$",
        "harness",
        "expects the deprecation text to name twisted.*",
    ),
    (
        "test_task",
        r"ReactCoroutineFunctionTests\.test_defaultReactor",
        "harness",
        "Twisted's NoReactor helper sets aside Twisted's reactor, not treadle's",
    ),
    (
        "test_static",
        r"test_forbiddenResource$",
        "harness",
        "runs as root: chmod 0 does not stop reading",
    ),
    (
        "test_http",
        r"HTTPClientDeprecationTests",
        "harness",
        "trial looks up the real twisted.web.http module",
    ),
    # deliberate differences (README 'Differences from Twisted Web')
    (
        "test_resource",
        r"test_deprecated(ErrorPage|NoResource|ForbiddenResource)$",
        "deliberate",
        "error pages escape their text, so they are not deprecated",
    ),
    (
        "test_static",
        r"ContentHeaders$|test_multipleRangeRequest",
        "deliberate",
        "text types get '; charset=utf-8'",
    ),
    (
        "test_static",
        r"DirectoryListerTests\.test_render(Files|Directories|Filtered)$",
        "deliberate",
        "treadle's own directory listing page",
    ),
    (
        "test_static",
        r"test_directoryWithoutTrailingSlashRedirects",
        "deliberate",
        "relative 301 for a directory without its slash",
    ),
    (
        "test_static",
        r"test_undecodablePath",
        "deliberate",
        "an undecodable segment is a 404 without an error in the log",
    ),
    (
        "test_script",
        r"test_renderException",
        "deliberate",
        "tracebacks are not sent to clients unless displayTracebacks",
    ),
    ("test_util", r"test_redirectToUnicodeURL", "deliberate", "redirect URLs may be str"),
    (
        "test_web",
        r"GzipEncoderTests",
        "deliberate",
        "gzip: exact Content-Length, an already encoded body left alone",
    ),
    (
        "test_web",
        r"test_defaultLargerContentFile",
        "deliberate",
        "bodies go to a temporary file only above 1 MiB",
    ),
    (
        "test_web",
        r"testImplicitHead",
        "deliberate",
        "no info event per HEAD answered by render_GET",
    ),
    (
        "*",
        r"sanitizeLinearWhitespace|EnvironTests\.test_headers$",
        "deliberate",
        "header values with CR/LF/NUL raise ValueError (Twisted folds them)",
    ),
    (
        "test_wsgi",
        r"EnvironTests\.test_(scriptName|pathInfo)$",
        "deliberate",
        "WSGI SCRIPT_NAME/PATH_INFO at an empty segment",
    ),
    (
        "test_wsgi",
        r"StartResponseTests\.test_write$",
        "deliberate",
        "a 1xx status carries no body (RFC 9110 15.2)",
    ),
    (
        "test_defer",
        r"test_circularChainWarning|testNoDebugging",
        "deliberate",
        "a Deferred chained to itself fails with TypeError; AlreadyCalledError always names the Deferred",
    ),
    (
        "test_http",
        r"HTTP1_0Tests\.test_(buffer|noPipelining|noPipeliningApi)$|test_firstWrite$|test_firstWriteLastModified|test_lastModifiedAlreadyWritten|Expect100ContinueServerTests\.test_HTTP10|test_multipart(EmptyHeaderProcessing|Files|Form)|ChunkingTests\.test_multipartFormData",
        "deliberate",
        "responses are HTTP/1.1 (RFC 9110 6.2), with Server and Date",
    ),
    ("test_http", r"test_requestBodyTimeout", "deliberate", "the minimum body rate applies"),
    (
        "test_http",
        r"test_chunkedResponses|test_expect100ContinueHeader",
        "deliberate",
        "http.Request responses carry Server and Date (RFC 9110 6.6.1)",
    ),
    (
        "test_http",
        r"test_headersTooBig|test_tooManyHeaders|test_headerLimitPerRequest",
        "deliberate",
        "431 for too many or too large headers",
    ),
    (
        "test_http",
        r"test_headersMultiline|test_headerStripWhitespace|test_unknownTransferEncoding|test_invalidRequestLineExtraSpaces|test_multipartProcessingFailure|test_addCookieSanitization",
        "deliberate",
        "obsolete folding and Transfer-Encoding other than chunked refused; cookies with ; CR LF raise; forms parsed lazily",
    ),
    ("test_http", r"HTTP0_9Tests", "deliberate", "HTTP/0.9 gets no answer"),
    (
        "test_http",
        r"test_transferEncodingIdentity$",
        "deliberate",
        "transfer codings other than a lone chunked are refused (501)",
    ),
    (
        "test_http",
        r"test_HTTPChannelToleratesDataWhenTransportPaused",
        "deliberate",
        "no request is answered while the client reads nothing",
    ),
]


def classify(module, name, msg=""):
    if re.search(r"(has no attribute|is missing in treadle)[^\n]*\b_[a-zA-Z]", msg) or re.search(
        r"attribute '_[a-zA-Z]", msg
    ):
        return "internal", "a private name of Twisted's"
    if "b'Server: treadle" in msg or "b'Date: " in msg:
        return "deliberate", "http.Request responses carry Server and Date (RFC 9110 6.6.1)"
    for mod, pattern, cat, why in RULES:
        if mod in ("*", module) and re.search(pattern, name):
            return cat, why
    return "public", ""


def main(mods, work="/tmp/treadle-twisted-suite"):
    rows = []
    totals = dict(total=0, passed=0, internal=0, harness=0, deliberate=0, public=0)
    for m in mods:
        r = json.load(open(f"{work}/results-{m}.json"))
        seen = {}
        for name, msg in r["fails"]:
            seen.setdefault(name, msg)  # a test failing in call and teardown counts once
        counts = dict(internal=0, harness=0, deliberate=0, public=0)
        left = []
        for name, msg in seen.items():
            cat, _why = classify(m, name, msg)
            counts[cat] += 1
            if cat == "public":
                left.append(f"{name}: {msg[:100]}")
        total = r["passed"] + len(seen)
        about_public = total - counts["internal"] - counts["harness"]
        rows.append((m, total, r["passed"], counts, about_public, left))
        totals["total"] += total
        totals["passed"] += r["passed"]
        for k in counts:
            totals[k] += counts[k]
    print(
        "| module | run | pass | internal | harness | deliberate | public failing | pass / public | pass / public, deliberate aside |"
    )
    print("|---|---|---|---|---|---|---|---|---|")

    def line(name, total, passed, c, about):
        rate = passed / about if about else 1
        rate2 = passed / (about - c["deliberate"]) if about - c["deliberate"] else 1
        print(
            f"| {name} | {total} | {passed} | {c['internal']} | {c['harness']} | {c['deliberate']} | {c['public']} | {rate:.0%} | {rate2:.0%} |"
        )

    for m, total, passed, c, about, _left in rows:
        line(m, total, passed, c, about)
    line(
        "**all**",
        totals["total"],
        totals["passed"],
        totals,
        totals["total"] - totals["internal"] - totals["harness"],
    )
    for m, *_, left in rows:
        for item in left:
            print("PUBLIC", m, item, file=sys.stderr)


if __name__ == "__main__":
    main(
        sys.argv[1:]
        or [
            "test_resource",
            "test_static",
            "test_script",
            "test_util",
            "test_vhost",
            "test_pages",
            "test_web",
            "test_http_headers",
            "test_wsgi",
            "test_proxy",
            "test_httpauth",
            "test_http",
            "test_defer",
            "test_task",
        ]
    )
