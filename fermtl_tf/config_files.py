"""Config files with bases: YAML mappings that name the files they state differences to.

``base: ../common.yaml`` (relative to the file; or a list, merged in order) lets a
table's rows state only what differs from a shared file. Used by the experiment configs
(``fermtl_tf.experiments.config``) and by ``fermtl-report``, which needs a row's run
``name``; TF-free and free of the config schema.
"""

import copy
from pathlib import Path

import yaml

from fermtl_tf.errors import ConfigError


def _read_yaml_mapping(path, chain):
    """The YAML mapping in ``path``; errors name the file and, for a base, who included it."""
    where = f"{path}" + "".join(f" (base of {parent})" for parent in reversed(chain))
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"{where}: cannot read config: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not a text file (a config is YAML text)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: invalid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a config must be a YAML mapping")
    return raw


def _merges(base, value):
    """Whether mapping ``value`` merges into ``base`` rather than replacing it: both are
    mappings and they do not name different variants (``{name: ada, weight: 1}`` under
    ``{name: none}`` switches the variant, whose options are another set)."""
    if not (isinstance(value, dict) and isinstance(base, dict)):
        return False
    return "name" not in value or "name" not in base or value["name"] == base["name"]


#: Top-level keys a config replaces whole rather than merging into its base's: a row
#: lists every task it trains (a single-task row of a multi-task table drops the others).
REPLACED_KEYS = ("tasks",)


def deep_merge(base, override, replaced=()):
    """``override`` on top of ``base``: mappings merge key by key (a mapping naming another
    variant replaces, and so do the keys in ``replaced``), anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key not in replaced and _merges(merged.get(key), value):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_raw_config(path, _chain=()):
    """The raw config data of ``path`` with its ``base:`` files merged in (no validation).

    ``base: ../common.yaml`` (a path relative to the file, or a list of them, merged in
    order) names configs this one states the differences to: mappings are deep-merged
    (except a variant section naming another variant, and ``tasks``, which replace),
    lists and scalars replaced. A base may have a base; a cycle is an error.
    """
    path = Path(path)
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, resolved))
        raise ConfigError(f"{path}: key 'base': the bases form a cycle: {cycle}")
    raw = _read_yaml_mapping(path, _chain)
    bases = raw.pop("base", None)
    if bases is None:
        return raw
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: key 'base': expected a path or a list of paths")
    merged = {}
    for base in bases:
        merged = deep_merge(merged, read_raw_config(path.parent / base, (*_chain, resolved)),
                            REPLACED_KEYS)
    return deep_merge(merged, raw, REPLACED_KEYS)
