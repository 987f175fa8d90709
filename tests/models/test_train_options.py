"""Training options: text into a checked TrainConfig, once."""

from __future__ import annotations

import argparse

import pytest

from models.train_options import (
    TrainConfig,
    TrainOptionsError,
    add_train_arguments,
    config_from_args,
    parse_size,
    share,
)


def test_sizes_and_shares_parse_or_are_refused_with_what_was_given() -> None:
    assert parse_size("144x192") == (144, 192)
    assert parse_size("128") == (128, 128)
    assert share("0.25") == 0.25
    for bad in ("12", "ax3", "1x2x3"):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            parse_size(bad)
    for bad in ("-0.1", "1.5", "half"):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            share(bad)


def test_the_command_line_becomes_the_config_it_names() -> None:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--synthetic-dirt", "0.1", "--epochs", "2", "--from-scratch"])
    config = config_from_args(args)
    assert config == TrainConfig(synthetic_dirt=0.1, epochs=2, init_from="")


def test_synthetic_dirt_and_a_frozen_stem_do_not_go_together() -> None:
    with pytest.raises(TrainOptionsError, match="--freeze-stem"):
        TrainConfig(freeze_stem=True, synthetic_dirt=0.2)
    assert TrainConfig(freeze_stem=True).synthetic_dirt == 0.0
