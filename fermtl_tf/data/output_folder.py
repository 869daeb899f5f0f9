"""The ``--out`` folder of ``fermtl-prep``: one run at a time, and only its own files touched.

Issue 13 item 5: nothing of the user's is deleted or silently replaced. Three rules:

* **A lock** (:func:`locked`): ``.fermtl-prep.lock`` held with ``flock`` for the whole
  run, so a second run on the same folder stops at once with a one-line reason instead
  of racing the first for ``progress.json.tmp``. The kernel drops the lock when its
  process dies, so a run killed with SIGKILL leaves no lock that blocks the resume.
* **Ownership by name and record** (:func:`claim`): ``manifest.json``,
  ``progress.json`` and ``part.json`` are this tool's only when they parse and carry its
  ``dataset_fingerprint``; shard files (``shard-NNNNN-of-NNNNN.tfrecord``) only when such
  a record is in the folder; temporaries only under the exact names this tool writes
  (``<shard>.tmp``, ``manifest.json.tmp``, ``progress.json.tmp``, ``part.json.tmp``). Anything else --
  another ``*.tmp``, a foreign ``manifest.json``, shard-like files without a record --
  is never removed; a folder holding the latter two is refused.
* **Another dataset is refused** unless ``--overwrite``; ``--overwrite`` always
  rebuilds (every shard of this tool's is removed first).
"""

import contextlib
import fcntl
import json
import os
import re

from fermtl_tf.data.sources.base import PrepError
from fermtl_tf.data.tfrecord import TMP_SUFFIX

MANIFEST = "manifest.json"
PROGRESS = "progress.json"
PART = "part.json"  # a multi-machine worker's record (fermtl_tf.data.parts)
LOCK = ".fermtl-prep.lock"
SHARD_NAME = re.compile(r"^shard-\d{5}-of-\d{5}\.tfrecord$")
_RECORDS = (MANIFEST, PROGRESS, PART)

#: Folders this process holds the lock of (``locked`` is re-entrant within a process).
_HELD = {}


def _lock_holder(fd):
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "another process"


def _acquire(path):
    """An fd of ``path`` holding an exclusive ``flock``; PrepError if another run holds it.

    Re-checks that ``path`` still names the locked file: a run finishing at that moment
    unlinks it, and a lock on the unlinked file would guard nothing.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            folder = os.path.dirname(path)
            raise PrepError(f"another fermtl-prep run ({holder}) is writing to {folder}; "
                            f"wait for it to finish or choose another --out (lock: {path})"
                            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def locked(out_dir):
    """Hold ``out_dir``'s lock (creating the folder) for the ``with`` block.

    On leaving, the lock file is removed, and so is the folder when this call created it
    and nothing else was written there (a typo in an input path leaves no empty folder).
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    if out_dir in _HELD:
        _HELD[out_dir] += 1
        try:
            yield out_dir
        finally:
            _HELD[out_dir] -= 1
        return
    created = not os.path.isdir(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise PrepError(f"cannot create output folder {out_dir}: {error.strerror}") from None
    path = os.path.join(out_dir, LOCK)
    fd = _acquire(path)
    _HELD[out_dir] = 1
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield out_dir
    finally:
        del _HELD[out_dir]
        os.unlink(path)
        os.close(fd)
        if created and not os.listdir(out_dir):
            os.rmdir(out_dir)


def _own_record(out_dir, name):
    """``(exists, content)``: content is the parsed file when this tool wrote it, else None."""
    path = os.path.join(out_dir, name)
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except FileNotFoundError:
        return False, None
    except (OSError, ValueError):
        return True, None
    if isinstance(content, dict) and isinstance(content.get("dataset_fingerprint"), str):
        return True, content
    return True, None


def own_shards(out_dir):
    """Names of the files in ``out_dir`` named like this tool's shards, sorted."""
    return sorted(name for name in os.listdir(out_dir) if SHARD_NAME.match(name))


def own_temporaries(out_dir):
    """Names of the temporaries this tool writes (exact names only), sorted."""
    names = set(os.listdir(out_dir))
    return sorted(name for name in names if name.endswith(TMP_SUFFIX) and (
        name[: -len(TMP_SUFFIX)] in _RECORDS
        or SHARD_NAME.match(name[: -len(TMP_SUFFIX)])))


def remove_own_files(out_dir, keep=()):
    """Remove this tool's temporaries and its shards not named in ``keep``; return them."""
    stale = own_temporaries(out_dir) + [n for n in own_shards(out_dir) if n not in keep]
    for name in stale:
        os.remove(os.path.join(out_dir, name))
    return sorted(stale)


def claim(out_dir, fingerprint, overwrite):
    """Check ``out_dir`` (locked) for a run of dataset ``fingerprint``.

    Returns the progress entries a resumed run may reuse (``{}`` after ``overwrite`` or
    on a fresh folder). Raises :class:`PrepError` for a folder holding another dataset
    (unless ``overwrite``) or files of the names this tool writes that it did not write.
    """
    found = {name: _own_record(out_dir, name) for name in _RECORDS}
    strangers = [name for name, (exists, content) in found.items() if exists and content is None]
    if strangers:
        raise PrepError(
            f"{os.path.join(out_dir, strangers[0])} was not written by fermtl-prep (it is "
            "not a manifest/progress record of this tool) and is not removed; move it "
            "or choose another --out folder")
    records = [content for _, content in found.values() if content is not None]
    shards = own_shards(out_dir)
    if not records and shards:
        raise PrepError(
            f"output folder {out_dir} holds {len(shards)} file(s) named like fermtl-prep "
            f"shards ({shards[0]}, ...) but no manifest.json or progress.json saying this "
            "tool wrote them; they are not removed: move them or choose another --out folder")
    foreign = {record["dataset_fingerprint"] for record in records} - {fingerprint}
    if foreign and not overwrite:
        raise PrepError(
            f"output folder {out_dir} holds a different dataset (its manifest/progress/shards "
            "were written with another source, source options or preparation options); use "
            "--overwrite to replace it or choose another --out folder")
    if foreign or overwrite:
        for name in _RECORDS:
            if found[name][0]:
                os.remove(os.path.join(out_dir, name))
        remove_own_files(out_dir)
        return {}
    progress = found[PROGRESS][1] or {}
    return progress.get("shards", {})
