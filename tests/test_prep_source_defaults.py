"""Per-source preparation defaults (``Source.prep_defaults``) in ``fermtl-prep``'s parser."""

import dataclasses

import pytest

from fermtl_tf.cli.prep import _common_parser, build_parser
from fermtl_tf.data.prepare import PrepOptions
from fermtl_tf.data.sources import PrepError
from fermtl_tf.data.sources.base import Source

GLOBAL = PrepOptions()


def parse(*argv):
    return build_parser().parse_args([*argv, "--out", "unused"])


def test_a_source_default_reaches_the_parsed_options():
    assert parse("aff_wild2", "--root", "r").box_extension == 0.0
    assert parse("afew_va", "--root", "r").crop_from == "landmarks"


def test_the_command_line_still_overrides_a_source_default():
    args = parse("aff_wild2", "--root", "r", "--box-extension", "0.3")
    assert args.box_extension == pytest.approx(0.3)
    assert parse("afew_va", "--root", "r", "--crop-from", "detect").crop_from == "detect"


def test_other_sources_keep_every_global_default():
    args = parse("manifest", "--csv", "labels.csv")
    for field in dataclasses.fields(PrepOptions):
        assert getattr(args, field.name) == getattr(GLOBAL, field.name), field.name


def test_source_defaults_do_not_leak_into_sources_parsed_later():
    parser = build_parser()
    parser.parse_args(["aff_wild2", "--root", "r", "--out", "o"])
    args = parser.parse_args(["manifest", "--csv", "labels.csv", "--out", "o"])
    assert args.box_extension == GLOBAL.box_extension
    assert args.crop_from == GLOBAL.crop_from


def test_help_shows_the_source_default():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    assert "(default 0.0, aff_wild2's default)" in " ".join(sub["aff_wild2"].format_help().split())
    assert "(default 0.2)" in " ".join(sub["manifest"].format_help().split())


class _Fake(Source):
    name = "fake"


def test_an_unknown_prep_default_is_refused_naming_the_source():
    source = _Fake()
    source.prep_defaults = {"box_extention": 0.0}
    with pytest.raises(PrepError, match=r"source 'fake'.*'box_extention'"):
        _common_parser(source)


def test_a_wrongly_typed_prep_default_is_refused_naming_the_source():
    source = _Fake()
    source.prep_defaults = {"crop_from": "nose"}
    with pytest.raises(PrepError, match=r"source 'fake' prep_defaults.*crop_from"):
        _common_parser(source)


def test_a_switch_a_source_turns_on_can_be_turned_off():
    source = _Fake()
    source.prep_defaults = {"strict": True}
    parser = _common_parser(source)
    assert parser.parse_args(["--out", "o"]).strict is True
    assert parser.parse_args(["--out", "o", "--no-strict"]).strict is False
