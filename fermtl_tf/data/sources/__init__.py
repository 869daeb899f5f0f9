"""Registry of source importers: ``register_source``, ``get_source``, ``list_sources``.

A source turns one dataset layout into an ``ImportedDataset`` (see ``base.py``). Every
module of this package that defines ``SOURCE`` (a :class:`Source` instance) is
registered at import, so a new benchmark importer is one new module. Third-party code
can add its own with ``register_source(MySource())`` before calling
``fermtl_tf.cli.prep.main``.
"""

import importlib
import pkgutil

from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source

_REGISTRY = {}


def register_source(source):
    """Register a :class:`Source` instance under ``source.name`` (names are unique)."""
    if not isinstance(source, Source) or not source.name:
        raise TypeError(f"expected a named Source instance, got {source!r}")
    if source.name in _REGISTRY:
        raise ValueError(f"a source named {source.name!r} is already registered")
    _REGISTRY[source.name] = source
    return source


def get_source(name):
    """The source registered under ``name``; PrepError listing the known ones if absent."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PrepError(f"unknown source {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def list_sources():
    """``[(name, one-line description)]`` of every registered source, sorted by name."""
    return [(name, _REGISTRY[name].description) for name in sorted(_REGISTRY)]


def _register_builtin_sources():
    """Import every module of this package and register its ``SOURCE``, in name order."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        source = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SOURCE", None)
        if source is not None:
            register_source(source)


_register_builtin_sources()

__all__ = [
    "FaceInput", "ImportedDataset", "PrepError", "Source",
    "register_source", "get_source", "list_sources",
]
