"""Defaults are the released code's, and --help says so."""
import pytest

import main_CD
import main_SSW
import main_Vox
from utils.build import fill_model_flags
from utils.methods import build_method


def help_text(module) -> str:
    return " ".join(module.build_parser().format_help().split())


@pytest.mark.parametrize("shown", [
    "training (defaults: the released main_CD.py)", "--epochs EPOCHS training epochs (default: 200)",
    "StepLR period in epochs (default: 100)", "(all processes together) (default: 32)",
    "initial learning rate (0 keeps the weights, e.g. to check a pipeline) (default: 0.001)", "SGD momentum (default: 0.9)", "(default: 0.0001)",
    "for CREMA-D) (default: 0.8)", "(0 = our epoch 1) (default: 0)", "ogm/ogm_ge 50 as OGM-GE's main.py",
    "earlier variant) (default: paper)", "frames per clip, spread evenly over the clip (default: 1)",
])
def test_main_cd_help_shows_the_release_defaults(shown):
    assert shown in help_text(main_CD)


def test_main_cd_parses_to_the_release_defaults():
    args = main_CD.build_parser().parse_args([])
    assert (args.epochs, args.lr_decay_step, args.batch_size, args.learning_rate) == (200, 100, 32, 1e-3)
    assert (args.modulation_starts, args.modulation_ends, args.ogm_coefficient) == (0, None, "paper")
    ogm = build_method(main_CD.build_parser().parse_args(["--method", "ogm"]), main_CD.SOURCE.modalities)
    assert ogm.active(51) and not ogm.active(52)  # None: OGM's own 0..50 window
    assert args.val_split is None and args.generate_split is False
    fill_model_flags(args, None, main_CD.SOURCE.model_defaults)
    assert (args.fusion_method, args.mmcosine, args.scaling) == ("concat", False, 10.0)


def test_main_ssw_follows_the_released_main_cd():
    assert "training (defaults: the released main_CD.py, which also ran SSW60)" in help_text(main_SSW)
    args = main_SSW.build_parser().parse_args([])
    assert (args.epochs, args.lr_decay_step, args.batch_size) == (200, 100, 32)


@pytest.mark.parametrize("entry,recipe,defaults", [
    ("main_KS", "OGM-GE's main.py", (100, 70, 64, 3, 10.24)),
    ("main_AVE", "PMR's AVE scripts", (130, 70, 64, 4, 10.0)),
    ("main_VGG", "OGM-GE's main.py", (100, 70, 64, 3, 5.0)),
])
def test_the_other_benchmarks_follow_the_code_their_numbers_come_from(entry, recipe, defaults):
    module = __import__(entry)
    assert f"training (defaults: {recipe})" in help_text(module)
    args = module.build_parser().parse_args([])
    assert (args.epochs, args.lr_decay_step, args.batch_size, args.num_frames, args.audio_seconds) == defaults


def test_main_vox_defaults_are_main_vox2s():
    text = help_text(main_Vox)
    for shown in ("training (defaults: the released main_vox2.py)", "(default: 256)", "StepLR period in epochs (default: 70)",
                  "32,240 samples) (default: 2.015)", "64,240 samples) (default: 4.015)", "or centre (default: start)",
                  "spread evenly (default: release)"):
        assert shown in text
    args = main_Vox.build_parser().parse_args([])
    fill_model_flags(args, None, main_Vox.SOURCE.model_defaults)
    assert (args.fusion_method, args.n_mels, args.speaker_pooling, args.speaker_block_order) == \
        ("film", 40, "sap", "conv_relu_bn")
    # A checkpoint's own encoder settings win over the defaults when the flags are not typed.
    args = main_Vox.build_parser().parse_args([])
    ckpt = {"model_config": {"fusion": "gated", "mmcosine": True, "scaling": 5.0},
            "args": {"n_mels": 64, "speaker_pooling": "asp", "speaker_block_order": "conv_bn_relu"}}
    fill_model_flags(args, ckpt, main_Vox.SOURCE.model_defaults)
    assert (args.fusion_method, args.scaling, args.n_mels, args.speaker_pooling) == ("gated", 5.0, 64, "asp")


def test_batchnorm_weights_start_as_the_releases_backbones():
    import torch
    from models import AudioEncoder, VisualEncoder
    torch.manual_seed(0)
    for encoder in (AudioEncoder(), VisualEncoder()):
        weights = torch.cat([m.weight.detach() for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)])
        assert abs(weights.mean().item() - 1) < 0.005 and abs(weights.std().item() - 0.02) < 0.003  # N(1, 0.02)
        assert all(m.bias.abs().max() == 0 for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    constant = AudioEncoder(bn_init="constant")
    assert all(torch.equal(m.weight, torch.ones_like(m.weight))
               for m in constant.modules() if isinstance(m, torch.nn.BatchNorm2d))
    args = main_CD.build_parser().parse_args([])
    assert (args.bn_init, args.cudnn_deterministic) == ("normal", False)
