"""Twisted's ``twisted.web._auth`` module paths, for programs that import them.

Twisted keeps HTTP authentication in this private package and re-exports it from
``twisted.web.guard``; treadle keeps it in :mod:`treadle.web.guard`, and these modules
re-export it under Twisted's paths: :mod:`~treadle.web._auth.basic`,
:mod:`~treadle.web._auth.digest` and :mod:`~treadle.web._auth.wrapper`. New code imports
from :mod:`treadle.web.guard`.
"""
