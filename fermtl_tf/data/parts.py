"""Preparation over several machines: each worker writes a *part*, ``merge`` joins them.

Issue 13 item 8b. ``fermtl-prep <source> ... --num-workers N --worker-index i`` reads the
whole input listing (every worker sees the same ordered inputs: the importer's order and
the frame selection are deterministic) and builds only the shards ``k`` with
``k % N == i`` (:func:`worker_shards`). Shard ``k`` always holds inputs
``[k*n, (k+1)*n)`` (``n = records_per_shard``), so a worker's shard files are
byte-for-byte the ones a one-machine run writes under the same names; round robin keeps
the workers' loads even when the listing is ordered (by video, by subject). Each part
folder holds its shards, its ``progress.json`` (resume, as a one-machine run) and, once
complete, ``part.json`` (:func:`part_record`) instead of ``manifest.json``.

``fermtl-prep merge --out FINAL PART...`` (:func:`fermtl_tf.data.prepare.merge_parts`)
checks the parts with :func:`check_parts` and writes FINAL's shards, ``progress.json``
and ``manifest.json``: the same bytes as a one-machine run of the same command.
"""

import json
import os

from fermtl_tf.data.output_folder import PART
from fermtl_tf.data.sources.base import PrepError


def worker_shards(num_shards, num_workers, worker_index):
    """The shard indices worker ``worker_index`` of ``num_workers`` builds (round robin)."""
    return [k for k in range(num_shards) if k % num_workers == worker_index]


def shard_sizes(num_inputs, records_per_shard):
    """Inputs per shard of a one-machine run: full shards, then the remainder."""
    num_shards = max(1, -(-num_inputs // records_per_shard))
    return [min(records_per_shard, num_inputs - k * records_per_shard)
            for k in range(num_shards)]


def part_record(fingerprint, header, num_workers, worker_index, num_shards, entries):
    """``part.json``: the manifest's shard-independent fields (``header``), the partition
    and this worker's progress entries ``{k: entry}``."""
    return {"dataset_fingerprint": fingerprint, "num_workers": num_workers,
            "worker_index": worker_index, "num_shards": num_shards, "header": header,
            "shards": {str(k): entry for k, entry in sorted(entries.items())}}


def read_part(folder):
    """The ``part.json`` of a finished worker's folder; PrepError naming the folder."""
    path = os.path.join(os.fspath(folder), PART)
    try:
        with open(path, encoding="utf-8") as handle:
            part = json.load(handle)
    except FileNotFoundError:
        raise PrepError(f"{folder}: no {PART}: not a finished fermtl-prep worker part "
                        f"(run its `--num-workers N --worker-index i` command to the end)"
                        ) from None
    except (OSError, ValueError) as error:
        raise PrepError(f"{path}: unreadable part record ({error})") from None
    keys = ("dataset_fingerprint", "num_workers", "worker_index", "num_shards", "header",
            "shards")
    if not isinstance(part, dict) or any(key not in part for key in keys):
        raise PrepError(f"{path}: not a fermtl-prep part record (needs {', '.join(keys)})")
    return part


def check_parts(parts):
    """Validate ``[(folder, part record)]`` as the N parts of one dataset.

    They must share the dataset fingerprint (source, source options, output options),
    the partition and the manifest header; every worker index 0..N-1 must be there
    exactly once; each part must hold exactly its shards, no shard may be in two parts;
    and each shard's records + skips must be the inputs a one-machine run puts there,
    adding up to the header's input count. Returns (header, entries in shard order,
    ``{shard: folder holding it}``).
    """
    if not parts:
        raise PrepError("merge: no part folders given")
    first_folder, first = parts[0]
    for folder, part in parts[1:]:
        for key in ("dataset_fingerprint", "num_workers", "num_shards", "header"):
            if part[key] != first[key]:
                raise PrepError(f"merge: {folder} and {first_folder} are not parts of one "
                                f"preparation: their {key!r} differ (same source, options "
                                f"and --num-workers needed)")
    num_workers, num_shards = first["num_workers"], first["num_shards"]
    seen = {}
    for folder, part in parts:
        index = part["worker_index"]
        if index in seen:
            raise PrepError(f"merge: worker part {index} given twice: {seen[index]} and {folder}")
        seen[index] = folder
    missing = sorted(set(range(num_workers)) - set(seen))
    if missing:
        raise PrepError(f"merge: part(s) {', '.join(map(str, missing))} of {num_workers} "
                        f"missing (given: {', '.join(map(str, sorted(seen)))})")
    header = first["header"]
    sizes = shard_sizes(header["counts"]["inputs"], header["options"]["records_per_shard"])
    if len(sizes) != num_shards:
        raise PrepError(f"merge: {first_folder}: {num_shards} shards recorded for "
                        f"{header['counts']['inputs']} inputs; expected {len(sizes)}")
    entries, owner = {}, {}
    for folder, part in parts:
        held = sorted(int(k) for k in part["shards"])
        expected = worker_shards(num_shards, num_workers, part["worker_index"])
        for k in held:
            if k in owner:
                raise PrepError(f"merge: shard {k} is in two parts: {owner[k]} and {folder}")
            owner[k] = folder
        if held != expected:
            raise PrepError(f"merge: {folder} holds shards {held}, worker "
                            f"{part['worker_index']} of {num_workers} builds {expected}")
        for k in held:
            entry = part["shards"][str(k)]
            count = entry["num_records"] + len(entry["skipped"])
            if count != sizes[k]:
                raise PrepError(f"merge: {folder}: shard {k} accounts for {count} inputs "
                                f"(records + skips), a one-machine run puts {sizes[k]} there")
            entries[k] = entry
    return header, [entries[k] for k in range(num_shards)], owner
