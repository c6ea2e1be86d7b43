"""Boolean flags mean what they say; typed flags override a resumed run's saved ones."""
import argparse

import pytest

import main_CD
from utils.args import explicit_flags, str2bool


@pytest.mark.parametrize("word,value", [("True", True), ("true", True), ("1", True), ("yes", True),
                                        ("False", False), ("false", False), ("0", False), ("no", False)])
def test_str2bool(word, value):
    assert str2bool(word) is value


def test_mmcosine_false_parses_as_false():
    parser = main_CD.build_parser()
    assert parser.parse_args(["--mmcosine", "False"]).mmcosine is False
    assert parser.parse_args(["--mmcosine", "True"]).mmcosine is True
    assert parser.parse_args(["--use_tensorboard", "0"]).use_tensorboard is False
    assert parser.parse_args([]).mmcosine is None  # filled later: default False, or the checkpoint's


def test_bad_boolean_is_rejected():
    with pytest.raises(argparse.ArgumentTypeError):
        str2bool("perhaps")


def test_seed_defaults():
    args = main_CD.build_parser().parse_args([])
    assert (args.optimizer, args.learning_rate, args.momentum, args.weight_decay) == ("sgd", 1e-3, 0.9, 1e-4)
    assert (args.epochs, args.batch_size, args.lr_decay_step, args.lr_decay_ratio) == (200, 32, 100, 0.1)


def test_explicit_flags_sees_only_what_was_typed():
    parser = main_CD.build_parser()
    typed = explicit_flags(parser, ["--epochs", "5", "--train", "--mmcosine", "no", "--learning_rate=0.1"])
    assert typed == {"epochs", "train", "mmcosine", "learning_rate"}


def test_modality_is_a_shorthand_for_the_unimodal_methods():
    from dataset import DataError
    from utils.cli import parse
    parser = main_CD.build_parser()
    assert parse(parser, ["--modality", "audio"]).method == "audio_only"
    assert parse(parser, ["--modality", "visual", "--method", "visual_only"]).method == "visual_only"
    assert parse(parser, []).method == "joint"
    with pytest.raises(DataError, match="cannot be combined with --method ogm_ge"):
        parse(parser, ["--modality", "audio", "--method", "ogm_ge"])


@pytest.mark.parametrize("flags,kind,expected", [
    ([], "SGD", {"lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4}),
    (["--optimizer", "adam", "--adam_betas", "0.9", "0.99", "--weight_decay", "0"], "Adam",  # PMR's scripts
     {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.0}),
    (["--optimizer", "adamw", "--learning_rate", "5e-5", "--weight_decay", "0.01"], "AdamW",  # OPM's recipe
     {"lr": 5e-5, "betas": (0.9, 0.999), "weight_decay": 0.01}),
    (["--optimizer", "adagrad", "--weight_decay", "0"], "Adagrad", {"lr": 1e-3, "weight_decay": 0.0}),
])
def test_each_optimizer_gets_the_flags_settings(flags, kind, expected):
    import torch
    from utils.build import build_optimizer
    args = main_CD.build_parser().parse_args(flags)
    optimizer = build_optimizer(args, [{"params": [torch.nn.Parameter(torch.zeros(2))]}])
    assert type(optimizer).__name__ == kind
    assert {k: optimizer.param_groups[0][k] for k in expected} == expected


def test_adam_betas_must_lie_in_zero_one():
    with pytest.raises(SystemExit):
        main_CD.build_parser().parse_args(["--adam_betas", "0.9", "1.5"])


def test_a_checkpoint_from_before_a_flag_keeps_what_its_run_did():
    import main_KS
    from utils.args import restore_settings
    args = main_KS.build_parser().parse_args([])
    assert (args.frame_pick, args.frame_augment) == ("segments", "frame")
    old_run = {"num_frames": 3, "learning_rate": 0.01}  # args.json of a run made before --frame_pick existed
    restore_settings(args, old_run, typed=set())
    assert (args.frame_pick, args.frame_augment, args.num_frames) == ("even", "clip", 3)
    args = main_KS.build_parser().parse_args(["--frame_pick", "fixed"])
    restore_settings(args, old_run, typed={"frame_pick"})
    assert (args.frame_pick, args.frame_augment) == ("fixed", "clip")
    args = main_KS.build_parser().parse_args([])
    restore_settings(args, {**old_run, "frame_pick": "segments", "frame_augment": "frame"}, typed=set())
    assert (args.frame_pick, args.frame_augment) == ("segments", "frame")
    assert not hasattr(args, "segment")  # AVE's flag is not added to a Kinetics-Sounds run


def test_pmr_builds_aves_prototypes_from_its_validation_list_as_the_authors():
    import main_AVE
    assert main_AVE.build_parser().parse_args([]).pmr_prototype_set == "validation"
    assert main_CD.build_parser().parse_args([]).pmr_prototype_set == "train"
