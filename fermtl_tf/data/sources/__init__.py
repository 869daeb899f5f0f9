"""Registry of source importers: ``register_source``, ``get_source``, ``list_sources``.

A source turns one dataset layout into an ``ImportedDataset`` (see ``base.py``). Every
module of this package that defines ``SOURCE`` (a :class:`Source` instance) is
registered at import, so a new benchmark importer is one new module. Third-party code
can add its own with ``register_source(MySource())`` before calling
``fermtl_tf.cli.prep.main``.
"""

import sys

from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.registry import Registry

REGISTRY = Registry("source", Source, missing=PrepError)


def register_source(source):
    """Register a :class:`Source` instance under ``source.name`` (names are unique)."""
    return REGISTRY.register(source)


def get_source(name):
    """The source registered under ``name``; PrepError listing the known ones if absent."""
    return REGISTRY.get(name)


def list_sources():
    """``[(name, one-line description)]`` of every registered source, sorted by name."""
    return [(source.name, source.description) for source in REGISTRY.sorted()]


REGISTRY.discover(sys.modules[__name__], "SOURCE")

__all__ = [
    "FaceInput", "ImportedDataset", "PrepError", "Source",
    "register_source", "get_source", "list_sources",
]
