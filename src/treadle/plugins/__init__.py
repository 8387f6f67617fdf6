"""The plugin package: where ``treadle run`` (and :func:`treadle.plugin.getPlugins`) look.

Its path takes in, besides this folder, every ``treadle/plugins`` and every
``twisted/plugins`` folder on ``sys.path`` that is not a package itself (has no
``__init__.py``), as computed when this package is first imported. A project ships a plugin
by putting a module in such a folder, with no ``__init__.py`` beside it; programs written
for ``twistd`` already do, in ``twisted/plugins``, and their plugin modules run with their
``twisted.*`` imports served by treadle (see :mod:`treadle.plugin`).
"""

from __future__ import annotations

from treadle.python._plugin_path import install_finder, pluginPackagePaths

__all__: list[str] = []

# Extended in place (the import system keeps this very list), skipping folders already on
# it so that a reload does not list them twice.
__path__.extend(
    folder
    for folder in [*pluginPackagePaths(__name__), *pluginPackagePaths("twisted.plugins")]
    if folder not in __path__
)
install_finder(__name__)
