import importlib


class MissingName(Exception):
    pass


class Missing:
    def __init__(self, where):
        self._where = where

    def __getattr__(self, name):
        raise MissingName(f"{self._where}.{name}: {self._where} is missing in treadle")

    def __call__(self, *a, **k):
        raise MissingName(f"{self._where} is missing in treadle")

    def __mro_entries__(self, bases):
        raise MissingName(f"{self._where} is missing in treadle (used as a base class)")


def names(module, wanted):
    try:
        mod = importlib.import_module(module)
    except ImportError:
        mod = None
    out = []
    for n in wanted:
        if mod is not None and hasattr(mod, n):
            out.append(getattr(mod, n))
            continue
        try:
            out.append(importlib.import_module(f"{module}.{n}"))
        except ImportError:
            out.append(Missing(f"{module}.{n}"))
    return tuple(out)
