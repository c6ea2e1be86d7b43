"""Balancing methods: each mechanism checked on a real model, and each trains from the command line; the
methods defined for any number of modalities also on three (tiny_models.THREE), the pairwise ones refuse it."""
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import main_CD
from conftest import TINY_FLAGS
from dataset.errors import DataError
from dataset.modalities import AUDIO_VISUAL
from helpers.av_reference import check_run, has_reference
from helpers.tiny_models import THREE, build, tiny_batch, tiny_classifier, unimodal_run
from helpers.tiny_models import method_args as parsed_args
from utils.methods import METHODS
from utils.methods.ogm import modulation_coefficients
from utils.methods.step import Step
from utils.precision import Precision


def method_args(method="joint", modalities=AUDIO_VISUAL, **kw):
    """The entry script's flags for `method` as a user gets them (per-modality flags named after `modalities`),
    --learning_rate 0.01, and the attributes in `kw` set."""
    args = parsed_args(method, modalities=modalities)
    for key, value in {"learning_rate": 0.01, **kw}.items():
        setattr(args, key, value)
    return args


def build_method(args, modalities=AUDIO_VISUAL):
    return build(args, modalities)


def two_class_logits(p_true):
    """One sample of class 0 whose true-class probability is p_true."""
    return torch.log(torch.tensor([[p_true, 1 - p_true]]))


@pytest.mark.parametrize("rho,paper,shifted", [(1.2, 0.2557, 0.8414), (1.5, 0.1663, 0.6201), (2.0, 0.0783, 0.3360)])
def test_ogm_coefficient_is_the_authors_eq_10(rho, paper, shifted):
    labels = torch.tensor([0])
    strong, weak = two_class_logits(0.4 * rho), two_class_logits(0.4)  # score ratio = rho
    assert modulation_coefficients(strong, weak, labels, 0.8) == pytest.approx((paper, 1.0), abs=5e-5)
    assert modulation_coefficients(weak, strong, labels, 0.8) == pytest.approx((1.0, paper), abs=5e-5)
    assert modulation_coefficients(strong, weak, labels, 0.8, "shifted") == pytest.approx((shifted, 1.0), abs=5e-5)


def test_ogm_modulates_audio_on_a_tie_as_the_reference_does():
    # The reference tests rho_v > 1, else modulates audio (the first modality): at rho = 1 audio gets 1 - tanh(alpha).
    same = two_class_logits(0.5)
    assert modulation_coefficients(same, same, torch.tensor([0]), 0.8) == pytest.approx((1 - math.tanh(0.8), 1.0))


def grads_after_backward(model, inputs, labels):
    model.zero_grad()
    out = model(inputs)
    F.cross_entropy(out.logits, labels).backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.fixture
def model_and_batch():
    inputs, _ = tiny_batch(4)
    return tiny_classifier(3, "concat"), inputs, torch.tensor([0, 1, 2, 0])


def encoder_of(name):
    """The modality whose encoder holds parameter `name` (encoders.<modality>.…), or None."""
    parts = name.split(".")
    return parts[1] if parts[0] == "encoders" else None


def modulated(name, grad):
    """Only the encoders' 4-D gradients (conv weights) are OGM's to change."""
    return encoder_of(name) is not None and grad.dim() == 4


def test_ogm_scales_only_the_dominant_encoders_conv_weights(model_and_batch):
    model, inputs, labels = model_and_batch
    out, plain = grads_after_backward(model, inputs, labels)
    coeff_a, coeff_v = modulation_coefficients(out.unimodal["audio"], out.unimodal["visual"], labels, 0.8)
    logged = build_method(method_args("ogm")).before_step(model, out, labels, epoch=3)
    assert logged == {"coeff_a": coeff_a, "coeff_v": coeff_v} and min(coeff_a, coeff_v) < 1.0
    bn_params = {n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    untouched_bn = 0
    for name, p in model.named_parameters():
        if modulated(name, plain[name]):
            factor = coeff_a if encoder_of(name) == "audio" else coeff_v
            assert torch.equal(p.grad, plain[name] * factor), name
        else:
            assert torch.equal(p.grad, plain[name]), name
            untouched_bn += name.rsplit(".", 1)[0] in bn_params
    assert untouched_bn > 0  # BatchNorm gradients of the dominant encoder were left alone


def test_ogm_on_another_pair_modulates_its_two_encoders_by_name():
    """Any two modalities: the first in the dataset's order takes the audio's place, keys end in the tags."""
    pair = THREE[:2]
    model = tiny_classifier(3, "concat", modalities=pair)
    inputs, _ = tiny_batch(4, modalities=pair)
    labels = torch.tensor([0, 1, 2, 0])
    out, plain = grads_after_backward(model, inputs, labels)
    coeffs = dict(zip(("x", "y"), modulation_coefficients(out.unimodal["x"], out.unimodal["y"], labels, 0.8)))
    logged = build_method(method_args("ogm", modalities=pair), pair).before_step(model, out, labels, epoch=1)
    assert logged == {"coeff_x": coeffs["x"], "coeff_y": coeffs["y"]} and min(coeffs.values()) < 1.0
    for name, p in model.named_parameters():
        expected = plain[name] * coeffs[encoder_of(name)] if modulated(name, plain[name]) else plain[name]
        assert torch.equal(p.grad, expected), name


@pytest.mark.parametrize("method", ["ogm", "ogm_ge", "greedy"])
def test_pairwise_methods_refuse_three_modalities_in_one_line(method):
    with pytest.raises(DataError) as err:
        build_method(method_args(method, modalities=THREE), THREE)
    assert str(err.value) == (f"--method {method} is defined for 2 modalities and this dataset has 3 (x, y, z): "
                              "choose another --method")


def test_ogm_is_inactive_outside_its_epochs(model_and_batch):
    model, inputs, labels = model_and_batch
    out, plain = grads_after_backward(model, inputs, labels)
    method = build_method(method_args("ogm_ge", modulation_starts=2, modulation_ends=4))
    assert method.before_step(model, out, labels, epoch=6) == {"coeff_a": 1.0, "coeff_v": 1.0}  # 0-based index 5
    assert all(torch.equal(p.grad, plain[n]) for n, p in model.named_parameters())


def test_ogm_window_spans_the_references_0_to_50_inclusive():
    method = build_method(method_args("ogm", modulation_ends=None))  # the flag's default: the method's own
    active = [e for e in range(1, 101) if method.active(e)]
    assert active == list(range(1, 52))  # 51 epochs: the reference's 0-based 0..50


def test_ogm_ge_adds_noise_of_the_unscaled_std_to_both_encoders(model_and_batch):
    model, inputs, labels = model_and_batch
    out, plain = grads_after_backward(model, inputs, labels)
    coeffs = dict(zip(("audio", "visual"), modulation_coefficients(out.unimodal["audio"], out.unimodal["visual"],
                                                                   labels, 0.8)))
    torch.manual_seed(5)
    build_method(method_args("ogm_ge")).before_step(model, out, labels, epoch=1)
    # Direct computation: g <- k g + N(0, std(g) + 1e-8), audio's conv weights first, then visual's.
    torch.manual_seed(5)
    params = dict(model.named_parameters())
    for encoder in ("audio", "visual"):
        names = [n for n, p in params.items() if encoder_of(n) == encoder and modulated(n, plain[n])]
        assert names
        for name in names:
            g = plain[name]
            expected = g * coeffs[encoder] + torch.randn_like(g) * (g.std() + 1e-8)
            assert torch.allclose(params[name].grad, expected, atol=1e-7), name
        big = max(names, key=lambda n: plain[n].numel())
        noise = params[big].grad - plain[big] * coeffs[encoder]
        assert noise.std().item() == pytest.approx(plain[big].std().item(), rel=0.05)  # std before scaling
    for name, p in params.items():
        if not modulated(name, plain[name]):
            assert torch.equal(p.grad, plain[name]), name  # BatchNorm, biases and the head untouched


def test_mslr_groups_carry_the_set_rates(model_and_batch):
    model = model_and_batch[0]
    groups = build_method(method_args(method="mslr", mslr_audio_scale=2.0, mslr_visual_scale=0.5)).param_groups(model)
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates == {"audio_encoder": 0.02, "visual_encoder": 0.005, "fusion": 0.01}
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # every parameter exactly once
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.encoders["audio"].parameters()}


def fake_unimodal_run(path, method, lr):
    path.mkdir()
    (path / "args.json").write_text(json.dumps({"method": method, "learning_rate": lr, "epochs": 3}))
    return str(path)


def test_mslr_keeps_the_rates_of_the_unimodal_runs(demo_root, tmp_path):
    audio = fake_unimodal_run(tmp_path / "audio", "audio_only", 0.02)
    visual = fake_unimodal_run(tmp_path / "visual", "visual_only", 0.005)
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "run"), "--epochs", "1",
                  "--method", "mslr", "--mslr_unimodal_runs", audio, visual, *TINY_FLAGS])
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert (row["lr_audio_encoder"], row["lr_visual_encoder"], row["lr_fusion"]) == (0.02, 0.005, 0.01)


@pytest.mark.parametrize("extra,message", [
    ([], "--method mslr needs each encoder's learning rate, or it is joint training"),
    (["--mslr_unimodal_runs", "VISUAL", "AUDIO"], "is a 'visual_only' run, not audio_only"),
    (["--mslr_unimodal_runs", "AUDIO", "VISUAL", "--mslr_audio_scale", "2"], "either --mslr_unimodal_runs or"),
])
def test_mslr_never_silently_equals_joint_training(demo_root, tmp_path, capsys, extra, message):
    runs = {"AUDIO": fake_unimodal_run(tmp_path / "a", "audio_only", 0.02),
            "VISUAL": fake_unimodal_run(tmp_path / "v", "visual_only", 0.005)}
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "run"), "--epochs", "1",
                      "--method", "mslr", *[runs.get(x, x) for x in extra], *TINY_FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_dynamic_mslr_scales_each_encoder_rate_by_its_recent_progress(model_and_batch):
    model = model_and_batch[0]
    method = build_method(method_args(method="mslr", mslr_strategy="dynamic", mslr_every=2, mslr_audio_scale=2.0))
    optimizer = torch.optim.SGD(method.param_groups(model), lr=0.01)
    held_out = iter([{"acc_a": 40.0, "acc_v": 10.0}, {"acc_a": 40.0, "acc_v": 30.0},
                     {"acc_a": 30.0, "acc_v": 30.0}, {"acc_a": 20.0, "acc_v": 60.0}])
    method.measure = lambda dataset: next(held_out)
    rates = lambda: {g["name"]: g["lr"] for g in optimizer.param_groups}  # noqa: E731
    assert method.start_epoch(1, model, optimizer) == {}          # nothing trained yet
    method.start_epoch(2, model, optimizer)                       # one measurement, no adjustment yet
    assert rates() == {"audio_encoder": 0.02, "visual_encoder": 0.01, "fusion": 0.01}
    record = method.start_epoch(3, model, optimizer)              # (3 - 1) % 2 == 0: adjust over [m1, m2]
    assert record["mslr_factor_audio"] == pytest.approx(40 / 40) and record["mslr_factor_visual"] == pytest.approx(30 / 20)
    assert rates() == pytest.approx({"audio_encoder": 0.02, "visual_encoder": 0.015, "fusion": 0.01})
    method.start_epoch(4, model, optimizer)                       # measured, not adjusted
    record = method.start_epoch(5, model, optimizer)              # over the last two: [m3, m4]
    assert record["mslr_factor_audio"] == pytest.approx(20 / 25) and record["mslr_factor_visual"] == pytest.approx(60 / 45)
    assert rates()["audio_encoder"] == pytest.approx(0.016) and rates()["fusion"] == 0.01
    restored = build_method(method_args(method="mslr", mslr_strategy="dynamic", mslr_every=2))
    restored.load_state_dict(method.state_dict())
    assert restored.history == method.history


def fake_three_run(path, modality, lr):
    """The args.json of a uni-modal run on a generated dataset's modality (--method unimodal --modality NAME)."""
    path.mkdir()
    (path / "args.json").write_text(json.dumps({"method": "unimodal", "modality": modality, "learning_rate": lr}))
    return str(path)


def test_mslr_gives_each_of_three_encoders_its_rate(tmp_path):
    model = tiny_classifier(3, "concat", modalities=THREE)
    args = method_args("mslr", THREE, mslr_x_scale=2.0, mslr_z_scale=0.5)
    groups = build_method(args, THREE).param_groups(model)
    assert [(g["name"], g["lr"]) for g in groups] == [("x_encoder", 0.02), ("y_encoder", 0.01), ("z_encoder", 0.005),
                                                      ("fusion", 0.01)]
    for group, name in zip(groups, ("x", "y", "z")):
        assert [id(p) for p in group["params"]] == [id(p) for p in model.encoders[name].parameters()]
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # every parameter exactly once
    # The paper's fixed strategy on three: each encoder at its uni-modal run's rate, the runs in the dataset's order.
    runs = [fake_three_run(tmp_path / m, m, lr) for m, lr in (("x", 0.03), ("y", 0.002), ("z", 0.4))]
    kept = build_method(method_args("mslr", THREE, mslr_unimodal_runs=runs), THREE)
    assert kept.rates == {"x": 0.03, "y": 0.002, "z": 0.4}
    with pytest.raises(DataError, match="is a 'unimodal --modality y' run, not unimodal --modality x"):
        build_method(method_args("mslr", THREE, mslr_unimodal_runs=[runs[1], runs[0], runs[2]]), THREE)
    with pytest.raises(DataError, match="--mslr_x_scale / --mslr_y_scale / --mslr_z_scale"):
        build_method(method_args("mslr", THREE), THREE)


def test_dynamic_mslr_adjusts_three_encoders_each_by_its_own_accuracy():
    model = tiny_classifier(3, "concat", modalities=THREE)
    method = build_method(method_args("mslr", THREE, mslr_strategy="dynamic", mslr_every=2), THREE)
    optimizer = torch.optim.SGD(method.param_groups(model), lr=0.01)
    held_out = iter([{"acc_x": 10.0, "acc_y": 40.0, "acc_z": 20.0}, {"acc_x": 30.0, "acc_y": 20.0, "acc_z": 20.0}])
    method.measure = lambda dataset: next(held_out)
    method.start_epoch(1, model, optimizer)
    record = method.start_epoch(2, model, optimizer)  # measured, not adjusted
    assert record == {"mslr_holdout_acc_x": 10.0, "mslr_holdout_acc_y": 40.0, "mslr_holdout_acc_z": 20.0}
    record = method.start_epoch(3, model, optimizer)  # over [m1, m2]: latest / mean
    assert [record[f"mslr_factor_{m}"] for m in "xyz"] == pytest.approx([30 / 20, 20 / 30, 1.0])
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.015, 0.01 * 2 / 3, 0.01, 0.01])


def test_dynamic_mslr_from_the_command_line(demo_root, tmp_path):
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "run"), "--epochs", "3",
                  "--method", "mslr", "--mslr_strategy", "dynamic", "--mslr_every", "1", "--mslr_holdout", "0.2",
                  *TINY_FLAGS])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["train_count"] == 14 and "mslr_factor_audio" not in rows[0]
    for before, after in zip(rows, rows[1:]):
        for modality in ("audio", "visual"):
            expected = before[f"lr_{modality}_encoder"] * after[f"mslr_factor_{modality}"]
            assert after[f"lr_{modality}_encoder"] == pytest.approx(expected)
        assert after["lr_fusion"] == before["lr_fusion"]
    assert 0 <= rows[-1]["mslr_holdout_acc_v"] <= 100


@pytest.fixture(scope="session")
def unimodal_cli_runs(demo_root, tmp_path_factory):
    """audio_only and visual_only runs with MMCosine (1 epoch, weights kept at their start so the teachers'
    features stay finite on this tiny set): UMT's teachers and UME's members."""
    runs = {}
    for modality in ("audio", "visual"):
        run = tmp_path_factory.mktemp("unimodal") / modality
        main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(run), "--epochs", "1",
                      "--method", f"{modality}_only", "--mmcosine", "True", *TINY_FLAGS, "--learning_rate", "0"])
        runs[modality] = str(run)
    return runs


# What each method logs (per step, averaged over the epoch, or per epoch), as proof that its mechanism ran.
LOGGED = {"aug": "train_aug_loss_v", "cggm": "train_cggm_coeff_a", "ogm": "train_coeff_a", "ogm_ge": "train_coeff_v", "gblending": "train_gb_weight_fused",
          "greedy": "train_greedy_speed_gap", "mmpareto": "train_mmpareto_cos_audio", "pmr": "train_pmr_score_ratio_a",
          "agm": "train_agm_coeff_a", "inforeg": "train_inforeg_held_audio", "mbsd": "train_mbsd_weight",
          "cml": "cml_removed_audio", "opm": "train_opm_q_a", "umt": "train_umt_distill_a", "mla": "train_mla_loss_visual",
          "reconboost": "train_reconboost_boost_loss", "relearning": "relearn_weight_audio",
          "sample_level": "valuation_phi_audio", "modality_level": "valuation_gap_audio", "amco": "train_amco_mass_audio",
          "lfm": "lfm_alpha_align", "g2d": "train_g2d_coeff_a", "dgl": "train_dgl_loss_a", "arl": "train_arl_scale_a",
          "iprm": "train_iprm_weight_a",
          "dimml": "train_dimml_duc", "remix": "remix_share_a", "bss": "bss_share"}
# Flags that let a method act within a short run on the 18-clip demo.
SHORT_RUN = {"opm": ["--opm_warmup", "0"], "relearning": ["--epochs", "3", "--relearn_every", "1", "--relearn_holdout", "0.4"],
             "sample_level": ["--valuation_warmup", "0"], "modality_level": ["--valuation_warmup", "0"],
             "lfm": ["--lfm_holdout_clips", "4"], "arl": ["--arl_start", "-1"],
             "dimml": ["--dimml_duc_start", "0"], "remix": ["--remix_warmup", "0"]}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_from_the_command_line(method, demo_root, tmp_path, unimodal_cli_runs):
    """One run per method, with MMCosine (the paper's combination); the mechanism tests train them without."""
    runs = [unimodal_cli_runs["audio"], unimodal_cli_runs["visual"]]
    extra = {"umt": ["--umt_teachers", *runs], "ume": ["--ume_runs", *runs], "g2d": ["--g2d_teachers", *runs],
             "unimodal": ["--modality", "visual"]}
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "run"), "--epochs", "1",
                  "--method", method, "--mmcosine", "True", "--mslr_audio_scale", "0.5", *TINY_FLAGS,
                  *extra.get(method, []), *SHORT_RUN.get(method, [])])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    row = rows[-1]
    assert math.isfinite(row["train_loss"]) and row["test_count"] == 6
    # the same numbers as before modalities were keyed (--method unimodal --modality visual: visual_only's)
    reference = f"method {'visual_only' if method == 'unimodal' else method}"
    if has_reference(reference):
        check_run(reference, tmp_path / "run")
    if method in LOGGED:
        assert math.isfinite(row[LOGGED[method]])
    if method.startswith("ogm"):
        assert 0 < row["train_coeff_a"] <= 1 and 0 < row["train_coeff_v"] <= 1
    if method == "mslr":
        assert row["lr_audio_encoder"] == pytest.approx(0.005) and row["lr_fusion"] == pytest.approx(0.01)
    if method == "sample_level":  # every clip once plus the copies that train one modality alone
        drawn = 18 + row["valuation_copies_audio_alone"] + row["valuation_copies_visual_alone"]
        assert row["train_count"] == drawn - (drawn % 8 == 1)  # (less a last batch of one, which BatchNorm refuses)
    if method == "ume":  # nothing trains: the weights are the two runs'
        audio_run = torch.load(Path(unimodal_cli_runs["audio"]) / "best.pt", weights_only=True)["model"]
        mine = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
        kept = [k for k in audio_run if k.startswith("encoders.audio.")]
        assert kept and all(torch.equal(mine[k], audio_run[k]) for k in kept)
    if method in ("mla", "reconboost", "amco"):  # their heads come back from the checkpoint alone
        stats = main_CD.main(["--ckpt_path", str(tmp_path / "run" / "last.pt"), "--no_progress"])
        assert stats["acc"] == pytest.approx(row["test_acc"]) and stats["loss"] == pytest.approx(row["test_loss"], rel=1e-5)


@pytest.mark.parametrize("method,kept", [("audio_only", "audio"), ("visual_only", "visual")])
def test_unimodal_baselines_ignore_the_other_modality(method, kept, model_and_batch):
    model, inputs, labels = model_and_batch
    dropped_name = "visual" if kept == "audio" else "audio"
    build_method(method_args(method)).configure_model(model)
    model.eval()
    with torch.no_grad():
        ref = model(inputs)
        other = model({kept: torch.randn_like(inputs[kept]), dropped_name: inputs[dropped_name]})
        same = model({kept: inputs[kept], dropped_name: torch.randn_like(inputs[dropped_name])})
    assert not torch.allclose(ref.logits, other.logits)  # the kept modality matters
    assert torch.allclose(ref.logits, same.logits)       # the dropped one does not
    model.train()
    F.cross_entropy(model(inputs).logits, labels).backward()
    dropped = model.encoders[dropped_name]
    assert all(p.grad is None and not p.requires_grad for p in dropped.parameters())
    groups = build_method(method_args(method)).param_groups(model)
    assert not {id(p) for p in dropped.parameters()} & {id(p) for g in groups for p in g["params"]}


def test_a_unimodal_checkpoint_evaluates_as_trained(demo_root, tmp_path):
    run = tmp_path / "audio"
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(run), "--epochs", "1",
                  "--method", "audio_only", *TINY_FLAGS])
    logged = json.loads((run / "metrics.jsonl").read_text())
    stats = main_CD.main(["--ckpt_path", str(run / "best.pt"), "--data_root", str(demo_root), *TINY_FLAGS])
    assert stats["acc"] == pytest.approx(logged["test_acc"]) and stats["loss"] == pytest.approx(logged["test_loss"])


def test_gblending_weights_follow_the_ratio():
    from utils.methods.gblending import blending_weights
    previous = {"": (1.0, 1.2), "_a": (1.0, 1.1), "_v": (1.5, 1.6)}
    current = {"": (0.5, 0.9), "_a": (0.2, 1.2), "_v": (1.2, 1.4)}
    # gains: 0.3, -0.1 (none), 0.2; overfitting changes: 0.2, 0.9, 0.1
    raw = {"": 0.3 / 0.04, "_a": 0.0, "_v": 0.2 / 0.01}
    weights = blending_weights(previous, current)
    assert weights == pytest.approx({k: v / sum(raw.values()) for k, v in raw.items()}, rel=1e-6)
    assert blending_weights(previous, {k: (t, v + 1) for k, (t, v) in previous.items()}) is None


class EchoDataset:
    """Returns the key it is asked for."""

    def __len__(self):
        return 20

    def __getitem__(self, key):
        return key


def test_gblending_holds_out_part_of_the_train_split():
    ds = EchoDataset()
    method = build_method(method_args("gblending", gb_holdout=0.2, gb_every=2))
    train, held = method.split_train(ds, seed=3)
    assert len(held) == 4 and len(train) == 16
    assert not set(train.indices) & set(held.indices) and set(train.indices) | set(held.indices) == set(range(20))
    assert train[(0, 7)] == (train.indices[0], 7) and train[1] == train.indices[1]  # seeds pass through
    assert build_method(method_args("gblending", gb_holdout=0.2)).split_train(ds, seed=3)[1].indices == held.indices


def test_held_out_clips_are_scored_without_augmentation(demo_root):
    data = main_CD.build_datasets(main_CD.build_parser().parse_args(["--data_root", str(demo_root), *TINY_FLAGS]), True)
    train, held = build_method(method_args("gblending", gb_holdout=0.2)).split_train(data.train, seed=0)
    assert train.dataset.transform.train and not held.dataset.transform.train
    index = held.indices[0]
    assert torch.equal(held[(0, 1)][1], held[(0, 2)][1])  # the same frames whatever the augmentation seed
    assert torch.equal(held[0][0], data.train[index][0])  # the same clip


def test_gblending_loss_is_the_weighted_sum_of_head_losses(model_and_batch):
    model, inputs, labels = model_and_batch
    method = build_method(method_args("gblending"))
    method.weights = {"": 0.5, "_a": 0.3, "_v": 0.2}
    out = model(inputs)
    expected = (0.5 * F.cross_entropy(out.logits, labels) + 0.3 * F.cross_entropy(out.unimodal["audio"], labels)
                + 0.2 * F.cross_entropy(out.unimodal["visual"], labels))
    assert method.loss(out, labels, 1).item() == pytest.approx(expected.item(), rel=1e-6)


def test_gblending_blends_the_fused_and_three_modalities_heads():
    model = tiny_classifier(3, "concat", modalities=THREE)
    inputs, labels = tiny_batch(6, modalities=THREE)
    method = build_method(method_args("gblending", THREE, gb_every=1), THREE)
    assert method.weights == {"": 0.25, "_x": 0.25, "_y": 0.25, "_z": 0.25}  # 1 / (M + 1) until two measurements
    losses = lambda fused, x, y, z: {"loss": fused, "loss_x": x, "loss_y": y, "loss_z": z}  # noqa: E731
    sets = {"T": iter([losses(1.0, 1.0, 1.5, 1.2), losses(0.5, 0.2, 1.2, 1.0)]),   # training clips, measurements 1, 2
            "V": iter([losses(1.2, 1.1, 1.6, 1.3), losses(0.9, 1.2, 1.4, 1.0)])}   # held-out clips
    method.train_probe, method.holdout = "T", "V"
    method.measure = lambda dataset: next(sets[dataset])
    method.start_epoch(1, model, None)
    method.start_epoch(2, model, None)
    # By hand, G / O^2 per head: fused 0.3 / 0.2^2, x none (its held-out loss rose), y 0.2 / 0.1^2, z 0.3 / 0.1^2.
    raw = {"": 7.5, "_x": 0.0, "_y": 20.0, "_z": 30.0}
    assert method.weights == pytest.approx({k: v / 57.5 for k, v in raw.items()})
    out = model(inputs)
    expected = sum(raw[k] / 57.5 * F.cross_entropy(logits, labels) for k, logits in
                   (("", out.logits), ("_x", out.unimodal["x"]), ("_y", out.unimodal["y"]), ("_z", out.unimodal["z"])))
    assert method.loss(out, labels, 2).item() == pytest.approx(expected.item(), rel=1e-6)
    logged = method.before_step(model, out, labels, 2)
    assert logged == pytest.approx({"gb_weight_fused": 7.5 / 57.5, "gb_weight_x": 0.0, "gb_weight_y": 20 / 57.5,
                                    "gb_weight_z": 30 / 57.5})


def test_gblending_reestimates_from_measurements(demo_root, tmp_path):
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "gb"), "--epochs", "3",
                  "--method", "gblending", "--gb_every", "1", "--gb_holdout", "0.2", *TINY_FLAGS])
    rows = [json.loads(l) for l in (tmp_path / "gb" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["train_count"] == 14  # 18 train clips, round(0.2 * 18) = 4 held out
    first = [rows[0][f"train_gb_weight{k}"] for k in ("_fused", "_a", "_v")]
    assert first == pytest.approx([1 / 3] * 3)
    for row in rows:
        assert sum(row[f"train_gb_weight{k}"] for k in ("_fused", "_a", "_v")) == pytest.approx(1.0)
    # The measurements were taken and are kept for an exact resume.
    state = torch.load(tmp_path / "gb" / "last.pt", weights_only=True)["method"]
    assert set(state["previous"]) == {"", "_a", "_v"} and all(len(v) == 2 for v in state["previous"].values())


# ---- UMT and UME on three modalities: one uni-modal run per modality, in the dataset's order
def three_unimodal_run(tmp_path, modality, fusion="concat", mmcosine=False, seed=1):
    """A run directory holding the best.pt of a trained-looking uni-modal model on one of THREE's modalities."""
    run, model = unimodal_run(tmp_path, modality, fusion, mmcosine, seed, modalities=THREE)
    return str(run), model


@pytest.mark.parametrize("fusion,mmcosine", [("concat", False), ("sum", False), ("concat", True), ("sum", True)])
def test_ume_logits_are_the_mean_of_three_unimodal_models(tmp_path, fusion, mmcosine):
    runs, members = zip(*(three_unimodal_run(tmp_path, m, fusion, mmcosine, seed=i) for i, m in enumerate("xyz")))
    model = tiny_classifier(3, fusion, mmcosine=mmcosine, seed=7, modalities=THREE)
    args = method_args("ume", THREE, ume_runs=list(runs), fusion_method=fusion, mmcosine=mmcosine, scaling=10.0)
    build_method(args, THREE).configure_model(model)
    model.eval()
    inputs, _ = tiny_batch(4, modalities=THREE)
    with torch.no_grad():
        expected = (members[0](inputs).logits + members[1](inputs).logits + members[2](inputs).logits) / 3
        assert torch.allclose(model(inputs).logits, expected, atol=1e-5)


def test_umt_distils_each_of_three_teachers_into_its_encoder(tmp_path):
    runs, teachers = zip(*(three_unimodal_run(tmp_path, m, seed=i) for i, m in enumerate("xyz")))
    model = tiny_classifier(3, "concat", seed=7, modalities=THREE)
    method = build_method(method_args("umt", THREE, umt_teachers=list(runs), umt_lambda=10.0), THREE)
    method.configure_model(model)
    inputs, labels = tiny_batch(6, modalities=THREE)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    step = Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, 1, 0)
    captured = {}
    original = method.loss
    method.loss = lambda out, labels, epoch: captured.setdefault("loss", original(out, labels, epoch))
    out, _ = method.train_step(step)
    with torch.no_grad():
        distill = {m: F.mse_loss(out.enc[m], teacher.encoders[m](inputs[m])).item()
                   for m, teacher in zip("xyz", teachers)}
    expected = F.cross_entropy(out.logits, labels).item() + 10.0 * sum(distill.values())
    assert captured["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert method.logged == pytest.approx({f"umt_distill_{m}": d for m, d in distill.items()}, rel=1e-5)
    assert all(not p.requires_grad for t in method.teachers.values() for p in t.parameters())
    with pytest.raises(DataError, match="is not a unimodal --modality x run"):
        build_method(method_args("umt", THREE, umt_teachers=[runs[1], runs[0], runs[2]]), THREE).configure_model(
            tiny_classifier(3, "concat", modalities=THREE))


def test_unimodal_runs_written_before_modality_keys_give_their_encoders():
    from utils.methods.unimodal_runs import encoder_state
    w = torch.arange(3.0)
    ckpt = {"model": {"audio_encoder.trunk.0.weight": w, "visual_encoder.trunk.0.weight": w + 1,
                      "fusion.fc_out.weight": w + 2}}
    audio, visual = encoder_state(ckpt, "audio"), encoder_state(ckpt, "visual")
    assert list(audio) == list(visual) == ["trunk.0.weight"]
    assert torch.equal(audio["trunk.0.weight"], w) and torch.equal(visual["trunk.0.weight"], w + 1)


@pytest.fixture(scope="module")
def three_root(tmp_path_factory):
    from helpers import three_modalities
    return three_modalities.write_three_modality_demo(tmp_path_factory.mktemp("three") / "data")


def test_methods_for_any_number_of_modalities_train_three_from_the_command_line(three_root, tmp_path, capsys):
    """On the generated three-modality script: uni-modal runs on x, y and z (--modality NAME), then MSLR at their
    rates, UME of them, UMT from them and G-Blending; OGM refuses the dataset in one line."""
    from helpers import three_modalities as three
    tiny = ["--data_root", str(three_root), "--no_progress", "--batch_size", "6", "--mmcosine", "True"]

    def rows(name, *flags, epochs="1"):
        three.main(["--train", "--run_dir", str(tmp_path / name), "--epochs", epochs, *tiny, *flags])
        return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    rates = {"x": 0.001, "y": 0.002, "z": 0.004}
    runs = [str(tmp_path / f"only_{m}") for m in rates]
    for m, lr in rates.items():
        rows(f"only_{m}", "--modality", m, "--learning_rate", str(lr))
    row = rows("mslr", "--method", "mslr", "--mslr_unimodal_runs", *runs, "--learning_rate", "0.05")[-1]
    assert {m: row[f"lr_{m}_encoder"] for m in rates} == rates and row["lr_fusion"] == 0.05
    rows("ume", "--method", "ume", "--ume_runs", *runs)
    ume = torch.load(tmp_path / "ume" / "last.pt", weights_only=True)["model"]
    for m, run in zip(rates, runs):
        member = torch.load(Path(run) / "best.pt", weights_only=True)["model"]
        kept = [k for k in member if k.startswith(f"encoders.{m}.")]
        assert kept and all(torch.equal(ume[k], member[k]) for k in kept)
    row = rows("umt", "--method", "umt", "--umt_teachers", *runs, "--learning_rate", "0.01")[-1]
    assert all(math.isfinite(row[f"train_umt_distill_{m}"]) for m in rates)
    gb = rows("gb", "--method", "gblending", "--gb_every", "1", "--gb_holdout", "0.2", "--learning_rate", "0.05",
              epochs="2")
    for row in gb:
        assert sum(row[f"train_gb_weight_{k}"] for k in ("fused", "x", "y", "z")) == pytest.approx(1.0)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        three.main(["--train", "--run_dir", str(tmp_path / "ogm"), "--method", "ogm", *tiny])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "--method ogm is defined for 2 modalities" in err[0]
