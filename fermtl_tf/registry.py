"""``Registry``: named entries discovered in the modules of a package.

Importers (``fermtl_tf.data.sources``, each module defining ``SOURCE``) and methods
(``fermtl_tf.methods``, each sub-package defining ``SPEC``) register the same way: adding
one is adding a module, and a name can be registered once.
"""

import importlib
import pkgutil


class Registry:
    """Entries of type ``entry_type`` keyed by their ``name``.

    Args:
        kind: what an entry is, for messages ("source", "method").
        entry_type: the class every entry must be an instance of.
        missing: exception type raised by :meth:`get` for an unknown name.
    """

    def __init__(self, kind, entry_type, missing=KeyError):
        self.kind, self.entry_type, self.missing = kind, entry_type, missing
        self.entries = {}

    def register(self, entry):
        """Add ``entry`` under ``entry.name`` (unique); returns it."""
        if not isinstance(entry, self.entry_type) or not entry.name:
            raise TypeError(f"expected a named {self.entry_type.__name__}, got {entry!r}")
        if entry.name in self.entries:
            raise ValueError(f"a {self.kind} named {entry.name!r} is already registered")
        self.entries[entry.name] = entry
        return entry

    def get(self, name):
        """The entry named ``name``; ``missing`` listing the known names if absent."""
        try:
            return self.entries[name]
        except KeyError:
            raise self.missing(f"unknown {self.kind} {name!r}; known: "
                               f"{', '.join(sorted(self.entries))}") from None

    def sorted(self):
        """Every entry, sorted by name."""
        return [self.entries[name] for name in sorted(self.entries)]

    def discover(self, package, attribute, packages_only=False):
        """Import every module (or only sub-package) of ``package`` in name order and
        register its ``attribute`` where it defines one."""
        modules = sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name)
        for module in modules:
            if packages_only and not module.ispkg:
                continue
            entry = getattr(importlib.import_module(f"{package.__name__}.{module.name}"),
                            attribute, None)
            if entry is not None:
                self.register(entry)
