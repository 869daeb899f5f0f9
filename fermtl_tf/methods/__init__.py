"""Registry of methods: one sub-package per method, each defining ``SPEC``.

Every sub-package of ``fermtl_tf.methods`` whose ``__init__`` defines ``SPEC`` (a
:class:`~fermtl_tf.methods.spec.MethodSpec`) is registered at import, the way
``fermtl_tf.data.sources`` registers ``SOURCE``: adding a method is adding a folder.
Importing this package imports only the methods' config dataclasses (no TensorFlow).
"""

import sys

from fermtl_tf.methods.spec import MethodSpec
from fermtl_tf.registry import Registry

REGISTRY = Registry("method", MethodSpec)


def register_method(spec):
    """Register a :class:`MethodSpec` under ``spec.name`` (names are unique)."""
    return REGISTRY.register(spec)


def get_method(name):
    """The spec registered under ``name``; KeyError listing the known ones if absent."""
    return REGISTRY.get(name)


def list_methods():
    """Every registered :class:`MethodSpec`, sorted by name."""
    return REGISTRY.sorted()


REGISTRY.discover(sys.modules[__name__], "SPEC", packages_only=True)

__all__ = ["MethodSpec", "REGISTRY", "register_method", "get_method", "list_methods"]
