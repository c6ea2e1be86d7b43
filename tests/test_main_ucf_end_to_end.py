"""main_UCF.py end to end on a demo tree in the UCF-101 layout (RGB frames + TV-L1 flow): training, evaluation,
ImageNet initial weights from a local file, every balancing method on a pair that is not audio-visual, and the
one-line refusals of bad input."""
import json
import math

import pytest
import torch
from torchvision.models import resnet18

import main_UCF
from dataset.demo_ucf101 import write_ucf101_demo
from utils.methods import METHODS

TINY = ["--image_size", "16", "--batch_size", "8", "--no_progress", "--learning_rate", "0.01"]


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory):
    return write_ucf101_demo(tmp_path_factory.mktemp("ucf") / "UCF101", clips_per_class=4, seed=0,
                             frames_per_clip=6, image_size=20)


def rows_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("recipe", ["release", "balancebenchmark"])
def test_train_and_evaluate(recipe, ucf_root, tmp_path):
    run = tmp_path / "run"
    main_UCF.main(["--train", "--data_root", str(ucf_root), "--run_dir", str(run), "--epochs", "2", "--recipe", recipe,
                   "--fusion_method", "gated", "--mmcosine", "True", *TINY])
    row = rows_of(run)[-1]
    for key in ("acc_rgb", "acc_flow", "gt_logit_flow", "shapley_rgb", "shapley_flow", "acc_keep_none"):
        assert math.isfinite(row[f"test_{key}"]), key
    assert math.isfinite(row["weight_norm_flow"]) and not any(k.endswith(("_a", "_v")) for k in row)
    stats = main_UCF.main(["--ckpt_path", str(run / "last.pt"), "--data_root", str(ucf_root), "--no_progress"])
    assert stats["acc"] == pytest.approx(row["test_acc"]) and stats["acc_flow"] == pytest.approx(row["test_acc_flow"])


def test_imagenet_weights_start_both_encoders(ucf_root, tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), weights)
    run = tmp_path / "run"
    main_UCF.main(["--train", "--data_root", str(ucf_root), "--run_dir", str(run), "--epochs", "1",
                   "--recipe", "balancebenchmark", "--rgb_pretrain", str(weights), "--flow_pretrain", str(weights),
                   *TINY, "--learning_rate", "0"])
    out = capsys.readouterr().out
    assert "conv1 averaged over colour and repeated on 2 channels" in out
    state, imagenet = torch.load(run / "last.pt", weights_only=True)["model"], torch.load(weights)
    assert torch.equal(state["encoders.rgb.trunk.0.weight"], imagenet["conv1.weight"])
    assert torch.allclose(state["encoders.flow.trunk.0.weight"],
                          imagenet["conv1.weight"].mean(1, keepdim=True).repeat(1, 2, 1, 1))
    assert torch.equal(state["encoders.flow.trunk.7.1.conv2.weight"], imagenet["layer4.1.conv2.weight"])


@pytest.fixture(scope="module")
def unimodal_runs(ucf_root, tmp_path_factory):
    """A 1-epoch uni-modal run of each modality (UMT's teachers, UME's members, MSLR's rates), weights kept."""
    runs = {}
    for modality in ("rgb", "flow"):
        run = tmp_path_factory.mktemp("ucf_unimodal") / modality
        main_UCF.main(["--train", "--data_root", str(ucf_root), "--run_dir", str(run), "--epochs", "1",
                       "--recipe", "balancebenchmark", "--modality", modality, "--mmcosine", "True", *TINY,
                       "--learning_rate", "0"])
        runs[modality] = str(run)
    return runs


# flags that let a method act within one short epoch of the demo (as tests/test_methods.py's)
SHORT_RUN = {"opm": ["--opm_warmup", "0"], "sample_level": ["--valuation_warmup", "0"],
             "modality_level": ["--valuation_warmup", "0"], "lfm": ["--lfm_holdout_clips", "4"],
             "relearning": ["--relearn_every", "1", "--relearn_holdout", "0.6"], "remix": ["--remix_warmup", "0"],
             "arl": ["--arl_start", "-1"], "dimml": ["--dimml_duc_start", "0"]}


@pytest.mark.parametrize("method", sorted(m for m in METHODS if m not in ("audio_only", "visual_only")))
def test_every_method_trains_on_rgb_and_flow(method, ucf_root, tmp_path, unimodal_runs):
    runs = [unimodal_runs["rgb"], unimodal_runs["flow"]]
    extra = {"umt": ["--umt_teachers", *runs], "ume": ["--ume_runs", *runs], "mslr": ["--mslr_unimodal_runs", *runs],
             "g2d": ["--g2d_teachers", *runs], "unimodal": ["--modality", "flow"]}
    run = tmp_path / "run"
    main_UCF.main(["--train", "--data_root", str(ucf_root), "--run_dir", str(run), "--epochs", "1",
                   "--recipe", "balancebenchmark", "--method", method, "--mmcosine", "True", *TINY,
                   *extra.get(method, []), *SHORT_RUN.get(method, [])])
    row = rows_of(run)[-1]
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_acc_flow"])


def test_the_audio_visual_baselines_are_refused_in_one_line(ucf_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_UCF.main(["--train", "--data_root", str(ucf_root), "--run_dir", str(tmp_path / "run"),
                       "--method", "audio_only", *TINY])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "--method audio_only trains the audio encoder and this dataset has rgb, flow" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage,flags,message", [
    ("no_flow", [], "v_"),
    (None, ["--modality", "audio"], "argument --modality: invalid choice: 'audio'"),
    (None, ["--audio_pretrain", "x.pt"], "unrecognized arguments: --audio_pretrain x.pt"),
])
def test_bad_input_is_one_line_and_writes_nothing(damage, flags, message, ucf_root, tmp_path, capsys):
    import shutil
    root = ucf_root
    if damage == "no_flow":  # a listed video whose flow was never extracted
        root = tmp_path / "UCF101"
        shutil.copytree(ucf_root, root)
        victim = sorted((root / "flow" / "u").iterdir())[0]
        shutil.rmtree(victim)
        message = f"{victim.name} (no flow images in"
    with pytest.raises(SystemExit) as exit_info:
        main_UCF.main(["--train", "--data_root", str(root), "--run_dir", str(tmp_path / "run"), *TINY, *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()
