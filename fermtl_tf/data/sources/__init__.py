"""Registry of source importers: ``register_source``, ``get_source``, ``list_sources``.

A source turns one dataset layout into an ``ImportedDataset`` (see ``base.py``); the
built-in ones are registered below. Third-party code can add its own with
``register_source(MySource())`` before calling ``fermtl_tf.cli.prep.main``.
"""

from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.data.sources.manifest_csv import ManifestSource
from fermtl_tf.data.sources.synthface import SynthFaceSource

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


register_source(ManifestSource())
register_source(SynthFaceSource())

__all__ = [
    "FaceInput", "ImportedDataset", "PrepError", "Source",
    "register_source", "get_source", "list_sources",
]
