"""DI-MML: the DUC loss against a literal transcription of the authors' SupConLoss (value, and which features its
gradient reaches), the dimension selection against their get_indices and on a constructed feature set, the
stage-1 loss and prediction against a direct computation (two and three modalities), stage 2 (encoders, BatchNorm
statistics and own heads unchanged by training, only the new head learns, the certainty-weighted prediction),
refusals, and stage 1 then stage 2 from the command line with an exact resume of stage 1."""
import math

import pytest
import torch
import torch.nn.functional as F

import main_CD
from conftest import TINY_FLAGS
from dataset.errors import DataError
from dataset.modalities import AUDIO_VISUAL
from helpers.stopped_runs import assert_same_numbers, rows, stop_after_first_step
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier
from utils.build import model_config
from utils.methods import dimml
from utils.methods.dimml import duc_losses, exclusive_dims, top_dims
from utils.methods.step import Step
from utils.precision import Precision

AV = AUDIO_VISUAL


def their_contrast_loss(a_features, v_features, audio_only_indices, image_only_indices, temperature):
    """loss/contrast_loss.py SupConLoss.forward, literally (labels unused there)."""
    batch_size = a_features.shape[0]
    a_loss = 0
    v_loss = 0
    audio_only_features = a_features[:, audio_only_indices]
    image_audio_only_features = v_features[:, audio_only_indices]
    image_only_features = v_features[:, image_only_indices]
    audio_image_only_features = a_features[:, image_only_indices]
    for i in range(batch_size):
        v_loss += -torch.log(torch.exp(torch.matmul(image_audio_only_features[i], audio_only_features[i].detach().T) / temperature).sum() / torch.exp(torch.matmul(image_audio_only_features[i], audio_only_features.detach().T) / temperature).sum())  # noqa: E501
        a_loss += -torch.log(torch.exp(torch.matmul(audio_image_only_features[i], image_only_features[i].detach().T) / temperature).sum() / torch.exp(torch.matmul(audio_image_only_features[i], image_only_features.detach().T) / temperature).sum())  # noqa: E501
    v_loss /= batch_size
    a_loss /= batch_size
    return v_loss, a_loss


def features(n=6, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, d, generator=g) * 4).requires_grad_() for _ in range(2)]


@pytest.mark.filterwarnings("ignore:The use of `x.T`")  # their transcription transposes 1-d rows
def test_duc_loss_is_their_contrast_loss_and_reaches_only_the_learning_modality():
    audio_only, image_only = [0, 3, 5, 9], [1, 2, 11]
    a, v = features()
    dims = {"audio": {"visual": audio_only}, "visual": {"audio": image_only}}  # L_v, then L_a
    ours = duc_losses({"audio": a, "visual": v}, dims, 2.0)
    a2, v2 = (x.detach().clone().requires_grad_() for x in (a, v))
    v_loss, a_loss = their_contrast_loss(a2, v2, audio_only, image_only, 2.0)
    assert ours["visual"].item() == pytest.approx(v_loss.item(), rel=1e-5)
    assert ours["audio"].item() == pytest.approx(a_loss.item(), rel=1e-5)
    assert abs(ours["visual"].item() - ours["audio"].item()) > 0.05  # the two directions tell a swap apart
    (ours["visual"] + ours["audio"]).backward()
    (v_loss + a_loss).backward()
    torch.testing.assert_close(a.grad, a2.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(v.grad, v2.grad, rtol=1e-4, atol=1e-6)
    # L_v alone: the visual features learn the audio-only dimensions, the audio features get nothing
    a.grad = v.grad = None
    duc_losses({"audio": a, "visual": v}, {"audio": {"visual": audio_only}}, 2.0)["visual"].backward()
    assert a.grad is None and v.grad[:, audio_only].abs().sum() > 0
    assert v.grad[:, [d for d in range(16) if d not in audio_only]].abs().sum() == 0


def their_top_dims(total_features, labels, n_classes):
    """get_indices, main_CFT.py:187-204, on the pass's features (their per-sample loop summed at once)."""
    h = torch.zeros([n_classes, total_features.shape[1]])
    cnts = torch.zeros([n_classes])
    for f, y in zip(total_features, labels):
        h[y] += f
        cnts[y] += 1
    a_h = (h.T / cnts).T
    dist_a = torch.abs((total_features.unsqueeze(1).repeat(1, n_classes, 1) - a_h))
    argmin_a = (torch.argmin(dist_a, dim=1) == labels.unsqueeze(1).repeat(1, total_features.shape[1])).float()
    return set(torch.nonzero((torch.mean(argmin_a, dim=0) > torch.mean(argmin_a)))[:, 0].tolist())


def test_top_dims_are_their_get_indices():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(40) % 4
    feat = torch.rand(40, 32, generator=g) + 0.3 * torch.rand(4, 32, generator=g)[labels]
    mask = top_dims(feat, labels, 4)
    assert set(torch.nonzero(mask).flatten().tolist()) == their_top_dims(feat, labels, 4)
    assert 0 < mask.sum() < 32


def test_exclusive_dims_on_a_constructed_feature_set():
    """Dimensions 0-1 tell the classes apart in audio only, 2-3 in visual only, 4-5 in both, 6-7 in neither."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    noise = lambda: 0.2 * torch.randn(60, 8, generator=g)  # noqa: E731
    apart = 5.0 * labels[:, None].float()
    audio, visual = noise(), noise()
    audio[:, [0, 1, 4, 5]] += apart
    visual[:, [2, 3, 4, 5]] += apart
    tops = {"audio": top_dims(audio, labels, 3), "visual": top_dims(visual, labels, 3)}
    assert torch.nonzero(tops["audio"]).flatten().tolist() == [0, 1, 4, 5]
    assert exclusive_dims(tops) == {"audio": {"visual": [0, 1]}, "visual": {"audio": [2, 3]}}
    # a class missing from the pass has no centroid to be nearest to
    kept = labels != 2
    assert torch.nonzero(top_dims(audio[kept], labels[kept], 3)).flatten().tolist() == [0, 1, 4, 5]


def stage1(modalities=AV, *flags):
    args = method_args("dimml", "--dimml_shared_weight", "0.5", "--dimml_duc_temperature", "2",
                       "--dimml_certainty_temperature", "0.5", *flags, modalities=modalities)
    model = tiny_classifier(3, modalities=modalities)
    method = build(args, modalities)
    method.configure_model(model)
    return model, method


def direct_duc(enc, dims, tau):
    """sum over ordered pairs of mean_i -log softmax_j(f_n,i[E] . f_m,j[E].detach() / tau)_i, sample by sample."""
    loss = 0
    for m, students in dims.items():
        for n, kept in students.items():
            q, k = enc[n][:, kept], enc[m][:, kept].detach()
            loss += sum(-(q[i] @ k[i] / tau - torch.logsumexp(q[i] @ k.T / tau, 0)) for i in range(len(q))) / len(q)
    return loss


@pytest.mark.parametrize("modalities", [AV, THREE], ids=["audio-visual", "three"])
def test_stage1_loss_and_prediction_are_the_direct_computation(modalities):
    model, method = stage1(modalities)
    names = [m.name for m in modalities]
    g = torch.Generator().manual_seed(2)
    method.dims = exclusive_dims({m: torch.rand(512, generator=g) > 0.5 for m in names})
    inputs, labels = tiny_batch(6, modalities=modalities)
    out = model(inputs)
    loss = method.loss(out, labels, epoch=21)
    shared = model.fusion.fc_out  # H
    enc = {m: model.encoders[m](inputs[m]) for m in names}
    direct = sum(F.cross_entropy(model.unimodal_heads[m](enc[m]), labels) for m in names) \
        + 0.5 * sum(F.cross_entropy(shared(enc[m]), labels) for m in names) + direct_duc(enc, method.dims, 2.0)
    assert loss.item() == pytest.approx(direct.item(), rel=1e-5)
    ours = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    want = torch.autograd.grad(direct, list(model.parameters()), allow_unused=True)
    for (name, _), a, b in zip(model.named_parameters(), ours, want):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    assert method.logged["dimml_duc"] > 0
    # before --dimml_duc_start (0-based 20) no DUC term
    early = method.loss(model(inputs), labels, epoch=20)
    assert early.item() == pytest.approx((direct - direct_duc(enc, method.dims, 2.0)).item(), rel=1e-5)
    # the prediction: certainty weights over the own heads and H's sum, temperature 0.5
    parts = [model.unimodal_heads[m](enc[m]) for m in names] + [sum(shared(enc[m]) for m in names)]
    w = torch.softmax(torch.stack([p.softmax(1).max(1).values for p in parts], 1) / 0.5, 1)
    torch.testing.assert_close(out.logits, sum(w[:, k:k + 1] * p for k, p in enumerate(parts)), rtol=1e-5, atol=1e-6)


def stage1_run(tmp_path, modalities=AV, seed=5, **saved):
    """A run directory holding a stage-1 last.pt of a tiny model (trained-looking weights and BN statistics)."""
    model, _ = stage1(modalities)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if "running" in name:
                b.add_(torch.rand_like(b))
    args = method_args("dimml", modalities=modalities)
    args.fusion_method, args.mmcosine, args.scaling = "concat", False, 10.0
    run = tmp_path / "stage1"
    run.mkdir()
    torch.save({"model": model.state_dict(), "model_config": model_config(args, ["x", "y", "z"], model), "epoch": 3,
                "args": {"method": "dimml", "dimml_stage": 1, "epochs": 3, **saved}}, run / "last.pt")
    return run, model


def stage2(run, modalities=AV, *flags):
    args = method_args("dimml", "--dimml_stage", "2", "--dimml_stage1_run", str(run),
                       "--dimml_certainty_temperature", "2", *flags, modalities=modalities)
    args.fusion_method, args.mmcosine, args.scaling = "concat", False, 10.0
    model = tiny_classifier(3, modalities=modalities, seed=9)
    method = build(args, modalities)
    method.configure_model(model)
    return model, method


def test_stage2_trains_only_the_new_head_on_the_frozen_stage1_model(tmp_path):
    run, first = stage1_run(tmp_path)
    model, method = stage2(run)
    kept = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fusion.")}
    for key, value in kept.items():  # the stage-1 encoders, BN statistics and own heads; H is not kept
        torch.testing.assert_close(value, first.state_dict()[key], msg=key)
    assert model.fusion.fc_out.bias.abs().sum() == 0  # their weight_init: xavier-normal weights, zero bias
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all(n.startswith("fusion.") for n in trained)
    head = model.fusion.fc_out.weight.detach().clone()
    model.train()
    optimizer = torch.optim.SGD(method.param_groups(model), lr=0.5, momentum=0.9)
    for index, seed in enumerate((3, 4)):
        inputs, labels = tiny_batch(6, seed=seed)
        out, _ = method.train_step(Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs,
                                        labels, 1, index))
        assert method.logged["dimml_fused"] == pytest.approx(F.cross_entropy(out.fused, labels).item())
    for key, value in kept.items():  # running_mean / running_var / num_batches_tracked too
        assert torch.equal(model.state_dict()[key], value), key
    assert not torch.equal(model.fusion.fc_out.weight, head)
    # the prediction weighs own heads and fused head per sample by softmax(max-prob / 2)
    model.eval()
    inputs, _ = tiny_batch(6, seed=7)
    out = model(inputs)
    parts = [out.heads["audio"], out.heads["visual"], out.fused]
    w = torch.softmax(torch.stack([p.softmax(1).max(1).values for p in parts], 1) / 2, 1)
    torch.testing.assert_close(out.logits, w[:, :1] * parts[0] + w[:, 1:2] * parts[1] + w[:, 2:] * parts[2])
    assert model.head_spec == {"combine": {"name": "certainty", "temperature": 2.0}}


def test_stage2_refuses_runs_that_are_not_this_datasets_stage1(tmp_path):
    run, _ = stage1_run(tmp_path)
    with pytest.raises(DataError, match="another dataset"):
        stage2(run, THREE)
    other = tmp_path / "other"
    other.mkdir()
    ckpt = torch.load(run / "last.pt", weights_only=True)
    torch.save({**ckpt, "args": {"method": "dimml", "dimml_stage": 2}}, other / "last.pt")
    with pytest.raises(DataError, match="not a DI-MML stage-1 run \\(it ran --method dimml --dimml_stage 2\\)"):
        stage2(other)
    with pytest.raises(DataError, match="no best.pt in"):
        stage2(run, AV, "--dimml_stage1_checkpoint", "best")
    with pytest.raises(DataError, match="needs --dimml_stage1_run"):
        build(method_args("dimml", "--dimml_stage", "2"))
    with pytest.raises(DataError, match="is for --dimml_stage 2"):
        build(method_args("dimml", "--dimml_stage1_run", str(run)))


@pytest.fixture(scope="module")
def stage1_cli(demo_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("dimml") / "stage1"
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(run), "--epochs", "2", "--method", "dimml",
                  "--dimml_duc_start", "1", *TINY_FLAGS, "--learning_rate", "0.001"])
    return run


def test_stage1_then_stage2_from_the_command_line(stage1_cli, demo_root, tmp_path, capsys):
    first, second = rows(stage1_cli)
    assert "dimml_dims_a_not_v" not in first and first["train_dimml_duc"] == 0  # DUC from 0-based epoch 1
    assert second["dimml_dims_a_not_v"] > 0 and second["dimml_dims_v_not_a"] > 0 and second["train_dimml_duc"] > 0
    dims = torch.load(stage1_cli / "last.pt", weights_only=True)["method"]["dims"]
    assert len(dims["audio"]["visual"]) == second["dimml_dims_a_not_v"]
    run = tmp_path / "stage2"
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(run), "--epochs", "1", "--method", "dimml",
                  "--dimml_stage", "2", "--dimml_stage1_run", str(stage1_cli), *TINY_FLAGS])
    before = torch.load(stage1_cli / "last.pt", weights_only=True)["model"]
    after = torch.load(run / "last.pt", weights_only=True)
    frozen = [k for k in before if k.startswith(("encoders.", "unimodal_heads."))]
    assert any("running_mean" in k for k in frozen) and all(torch.equal(after["model"][k], before[k]) for k in frozen)
    assert after["model_config"]["unimodal_heads"] and after["model_config"]["head"]["combine"]["name"] == "certainty"
    row = rows(run)[-1]
    assert math.isfinite(row["train_dimml_fused"])
    stats = main_CD.main(["--ckpt_path", str(run / "last.pt"), "--no_progress"])
    assert stats["acc"] == pytest.approx(row["test_acc"])
    capsys.readouterr()
    refused = [(["--fusion_method", "sum"], "concat --mmcosine False, this run has --fusion_method sum"),
               (["--dimml_stage1_run", str(run)], "is not a DI-MML stage-1 run"),
               (["--dimml_stage", "3"], "--dimml_stage")]
    for flags, message in refused:
        with pytest.raises(SystemExit) as exit_:
            main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "refused"),
                          "--method", "dimml", "--dimml_stage", "2", "--dimml_stage1_run", str(stage1_cli),
                          *TINY_FLAGS, *flags])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and message in err
        assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
    assert not (tmp_path / "refused").exists()


def test_stage1_resumes_exactly_with_its_selected_dimensions(stage1_cli, demo_root, tmp_path, monkeypatch, capsys):
    """Stopped after the first step of epoch 2 (the dimensions chosen at its start), resumed: the run's dimensions
    come back from last.pt (selecting again is made to fail) and its numbers equal the straight run's."""
    run = tmp_path / "stopped"
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(run), "--epochs", "1", "--method", "dimml",
                  "--dimml_duc_start", "1", *TINY_FLAGS, "--learning_rate", "0.001"])
    with monkeypatch.context() as patch:
        stop_after_first_step(patch)
        with pytest.raises(SystemExit) as stopped:
            main_CD.main(["--resume", str(run), "--epochs", "2", "--no_progress"])
    assert stopped.value.code == 143
    with monkeypatch.context() as patch:
        patch.setattr(dimml.DIMML, "select_dims", lambda *a: pytest.fail("the dimensions were selected again"))
        main_CD.main(["--resume", str(run), "--epochs", "2", "--no_progress"])
    straight, resumed = rows(stage1_cli)[-1], rows(run)[-1]
    assert resumed["dimml_dims_a_not_v"] == straight["dimml_dims_a_not_v"]
    assert_same_numbers(straight, resumed)


@pytest.mark.parametrize("flag,value", [("--dimml_duc_temperature", "0"), ("--dimml_shared_weight", "-1"),
                                        ("--dimml_duc_start", "-1"), ("--dimml_stage1_checkpoint", "first")])
def test_bad_flags_are_one_error_line(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main_CD.main(["--train", "--method", "dimml", flag, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and flag in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
