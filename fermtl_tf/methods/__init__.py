"""Registry of methods: one sub-package per method, each defining ``SPEC``.

Every sub-package of ``fermtl_tf.methods`` whose ``__init__`` defines ``SPEC`` (a
:class:`~fermtl_tf.methods.spec.MethodSpec`) is registered at import, the way
``fermtl_tf.data.sources`` registers ``SOURCE``: adding a method is adding a folder.
Importing this package imports only the methods' config dataclasses (no TensorFlow).
"""

import importlib
import pkgutil

from fermtl_tf.methods.spec import MethodSpec

_REGISTRY = {}


def register_method(spec):
    """Register a :class:`MethodSpec` under ``spec.name`` (names are unique)."""
    if not isinstance(spec, MethodSpec) or not spec.name:
        raise TypeError(f"expected a named MethodSpec, got {spec!r}")
    if spec.name in _REGISTRY:
        raise ValueError(f"a method named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_method(name):
    """The spec registered under ``name``; KeyError listing the known ones if absent."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def list_methods():
    """Every registered :class:`MethodSpec`, sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def _register_builtin_methods():
    """Import every sub-package of this package and register its ``SPEC``, in name order."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.ispkg:
            spec = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SPEC", None)
            if spec is not None:
                register_method(spec)


_register_builtin_methods()

__all__ = ["MethodSpec", "register_method", "get_method", "list_methods"]
