"""Twisted's ``twisted.web``: HTTP/1.1 and the resource model on top of it.

It owns, from the bottom up: the protocol decisions (``_framing``, ``_status``) and the
HTTP/1.1 channel (``_parser``, ``_channel``: bytes in, requests out); the wire-level
request and the factory (:mod:`~treadle.web.http`); sites, rendering and traversal
(:mod:`~treadle.web.server`); resources (:mod:`~treadle.web.resource`); and the resources
built on those, as a user could have written them (:mod:`~treadle.web.static`,
:mod:`~treadle.web.script`, :mod:`~treadle.web.util`, :mod:`~treadle.web.vhost`,
:mod:`~treadle.web.proxy`, :mod:`~treadle.web.wsgi`, :mod:`~treadle.web.guard`, ...).

May import: :mod:`treadle.cred`, :mod:`treadle.internet` and :mod:`treadle.python`; never the
CLI. Inside the package a module imports only the ones below it in the list above.
"""
