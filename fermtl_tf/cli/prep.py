"""``fermtl-prep``: prepare a dataset as sharded TFRecords + manifest.json.

    fermtl-prep --list
    fermtl-prep manifest --csv data/labels.csv --out prepared/mydata [--crop-from landmarks]
    fermtl-prep synthface --out prepared/synthface --identities 20

Over N machines, each runs the same command with ``--num-workers N --worker-index i``
and its own ``--out`` (a part), then one joins them::

    fermtl-prep merge --out prepared/mydata parts/part-0 parts/part-1 ...

Problems the user can fix are reported as one line, ``fermtl-prep: error: <message>``,
with exit status 2; a rerun of an interrupted command resumes where it stopped.
"""

import argparse
import os
import sys

from fermtl_tf.data.sources import PrepError, get_source, list_sources

#: Flags shared by every source, mapped onto ``PrepOptions`` fields of the same name.
#: The help of a valued flag gets "(default ...)" appended: the default can be the
#: source's own (``Source.prep_defaults``).
_COMMON_HELP = {
    "size": "side of the square face crop in pixels",
    "crop_from": "face geometry: detect (MTCNN), landmarks or box",
    "box_extension": "scale the face box by 1 + ratio about its centre (Hu et al.: 0.2)",
    "align": "none; five_point (--align alone): 5-point similarity (MTCNN keypoints or "
             "landmarks); liu49: Liu et al. 2017's eye-line rotation + box of the 49 "
             "IntraFace points (without landmarks: MTCNN eyes + face box)",
    "undetected": "no face detected: skip the image, or crop its centre square (the "
                  "shorter side; manifest crops: centre-fallback)",
    "min_confidence": "MTCNN confidence cut-off",
    "match_iou": "detect mode: the detection must overlap the annotated landmarks' box by "
                 "this IoU to be their face (else their own box is used)",
    "landmark_margin": "skip a record whose landmarks lie more than this fraction of the "
                       "crop side outside the crop",
    "detect_batch_size": "images per batched MTCNN call",
    "detect_max_side": "MTCNN runs on a copy with this longer side (0: full resolution; "
                       "faces under ~20 * longer side / this px are missed); crops come "
                       "from the full image",
    "max_pixels": "skip images with more pixels than this, PNG/JPEG before decoding "
                  "(0: no budget)",
    "records_per_shard": "records per TFRecord shard",
    "image_format": "png or jpeg for the stored crops",
    "select_frames": "all, last:N, middle:N or every:N frames of each sequence",
    "folds": "assign K identity-independent folds (replaces the CSV's fold column)",
    "strict": "stop at the first bad input instead of skipping it",
    "overwrite": "rebuild every shard (replacing a different dataset already in --out)",
    "quiet": "no progress bar or summary",
    "hash_inputs": "decide which shards changed by hashing image contents, not by size + "
                   "modification time (reads every image on every run)",
    "workers": "worker processes (0: one per usable CPU); the output is the same for any "
               "number",
    "num_workers": "machines sharing this preparation: this one builds every N-th shard "
                   "into its own --out (a part); `fermtl-prep merge` joins the N parts",
    "worker_index": "this machine's part, 0..N-1 (with --num-workers N)",
}


def source_prep_defaults(source):
    """The :class:`PrepOptions` defaults for ``source``: the global ones updated by the
    source's ``prep_defaults``, checked (names and types) like a config file's options."""
    from fermtl_tf.data.prepare import PrepOptions

    overrides = dict(getattr(source, "prep_defaults", None) or {})
    unknown = sorted(set(overrides) - set(_COMMON_HELP))
    if unknown:
        raise PrepError(f"source {source.name!r}: prep_defaults names unknown preparation "
                        f"option(s) {', '.join(map(repr, unknown))}; known: "
                        f"{', '.join(_COMMON_HELP)}")
    return PrepOptions.from_dict(overrides, origin=f"source {source.name!r} prep_defaults")


def _common_parser(source=None):
    """The "preparation options" group, with ``source``'s defaults when given."""
    from fermtl_tf.data.prepare import (
        ALIGNMENTS,
        CROP_SOURCES,
        IMAGE_FORMATS,
        UNDETECTED,
        PrepOptions,
    )

    defaults = source_prep_defaults(source) if source is not None else PrepOptions()
    changed = set(getattr(source, "prep_defaults", None) or {})
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("preparation options")
    group.add_argument("--out", required=True, help="output folder for shards and manifest.json")
    for name, text in _COMMON_HELP.items():
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        whose = f", {source.name}'s default" if name in changed else ""
        if isinstance(default, bool):
            # A source defaulting a switch to on needs a way to turn it off (--no-<flag>).
            action = argparse.BooleanOptionalAction if default else "store_true"
            group.add_argument(flag, action=action, default=default,
                               help=text + (f" (on by default{whose})" if default else ""))
            continue
        help_text = f"{text} (default %(default)s{whose})"
        if name == "crop_from":
            group.add_argument(flag, default=default, choices=CROP_SOURCES, help=help_text)
        elif name == "align":
            # A bare --align keeps its old meaning, the 5-point similarity.
            group.add_argument(flag, nargs="?", const="five_point", default=default,
                               choices=ALIGNMENTS, help=help_text)
        elif name in ("image_format", "undetected"):
            choices = IMAGE_FORMATS if name == "image_format" else UNDETECTED
            group.add_argument(flag, default=default, choices=choices, help=help_text)
        else:
            group.add_argument(flag, type=type(default), default=default, help=help_text)
    return parser


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fermtl-prep",
        description="Prepare a face dataset as sharded TFRecords plus manifest.json.",
        epilog="Run `fermtl-prep <source> --help` for the layout a source expects.",
    )
    # dest differs from "list" so that a source's own --list option cannot shadow it.
    parser.add_argument("--list", dest="list_sources", action="store_true",
                        help="list the sources and exit")
    subparsers = parser.add_subparsers(dest="source", metavar="source")
    for name, description in list_sources():
        source = get_source(name)
        # One common parser per source: argparse parents share their actions, so a
        # source's defaults must not be set on a parser that other sources reuse.
        sub = subparsers.add_parser(
            name, parents=[_common_parser(source)], help=description,
            description=source.layout, formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        source.add_arguments(sub.add_argument_group(f"{name} options"))
    merge = subparsers.add_parser(
        "merge", help="join the parts of a preparation run on several machines",
        description="Check the parts written with --num-workers N --worker-index 0..N-1 "
                    "(same source and options, all N present, no shard twice, counts "
                    "adding up) and write one dataset folder: the shards, progress.json and "
                    "manifest.json a one-machine run writes.")
    merge.add_argument("parts", nargs="+", metavar="PART_DIR", help="the workers' --out folders")
    merge.add_argument("--out", required=True, help="output folder of the merged dataset")
    merge.add_argument("--overwrite", action="store_true",
                       help="replace a different dataset already in --out")
    merge.add_argument("--quiet", action="store_true", help="no summary")
    return parser


def _summary(manifest, out_dir):
    if "worker_index" in manifest:  # a part.json
        shards = manifest["shards"].values()
        return (f"fermtl-prep: worker {manifest['worker_index']} of {manifest['num_workers']} "
                f"wrote {sum(s['num_records'] for s in shards)} faces in {len(shards)} "
                f"shard(s) to {out_dir}; skipped {sum(len(s['skipped']) for s in shards)}; "
                f"join the parts with `fermtl-prep merge --out FINAL PART_DIR...`")
    counts = manifest["counts"]
    return (f"fermtl-prep: wrote {counts['written']} faces in {len(manifest['shards'])} shard(s) "
            f"to {out_dir}; skipped {counts['skipped']} (reasons in manifest.json)")


def _source_options(args):
    """The parsed options that belong to the source, not to preparation or the CLI."""
    shared = set(_COMMON_HELP) | {"out", "list_sources", "source"}
    return {name: value for name, value in sorted(vars(args).items()) if name not in shared}


def main(argv=None):
    """Entry point of ``fermtl-prep``; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_sources:
        sources = list_sources()
        width = max(len(name) for name, _ in sources)
        for name, description in sources:
            print(f"{name:{width}s}  {description}")
        return 0
    if not args.source:
        parser.error("choose a source (fermtl-prep --list shows them)")
    from fermtl_tf.data.prepare import merge_parts

    try:
        if args.source == "merge":
            manifest = merge_parts(args.parts, args.out, overwrite=args.overwrite)
        else:
            manifest = _prepare(args)
    except PrepError as error:
        print(f"fermtl-prep: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fermtl-prep: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"fermtl-prep: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(_summary(manifest, args.out), file=sys.stderr)
    return 0


def _prepare(args):
    """Prepare the source named on the command line; its manifest (or part record)."""
    from fermtl_tf.data.output_folder import locked
    from fermtl_tf.data.prepare import PrepOptions, prepare_dataset

    values = {name: getattr(args, name) for name in _COMMON_HELP}
    options = PrepOptions.from_dict(values, origin="command line")
    # Locked before the source is read: some sources write into --out (SynthFace's
    # raw images, decoded-pixel caches), and two runs must not interleave there.
    with locked(args.out):
        dataset = get_source(args.source).load(args)
        # The source's own options (protocol, split seed, ...) decide the output too,
        # so a rerun with other ones must not reuse the shards of this one.
        dataset.fingerprint.setdefault("source_options", _source_options(args))
        return prepare_dataset(dataset, args.out, options)


if __name__ == "__main__":
    sys.exit(main())
