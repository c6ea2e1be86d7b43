"""G²D (utils/methods/g2d.py) against computations written here: the loss (cross-entropy of the fused logits,
each frozen teacher's tau^2 KL into them and its encoder's feature MSE, the logits averaged or not), and SMP,
which zeroes the convolution-weight gradients of the encoder whose teacher is the most confident on the batch
and leaves every other gradient as the unmodulated step's, on two modalities and three; the window; a tie;
the teachers kept frozen in eval mode; bad flags."""
import copy

import pytest
import torch

import main_CD
from conftest import TINY_FLAGS
from dataset.errors import DataError
from dataset.modalities import AUDIO_VISUAL
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier, unimodal_run
from utils.methods.g2d import prioritised
from utils.methods.step import Step
from utils.precision import Precision


def teacher_runs(tmp_path, modalities, fusion="sum", mmcosine=False, sharpen=30.0):
    """(run directories, eval-mode models) of one uni-modal run per modality, each on a head of its own, its
    linear head's weights x `sharpen` so that its confidence varies from clip to clip."""
    runs, models = [], []
    for i, m in enumerate(modalities):
        run, model = unimodal_run(tmp_path, m.name, fusion, mmcosine, seed=i + 1, modalities=modalities)
        ckpt = torch.load(run / "best.pt", weights_only=True)
        if not mmcosine:
            ckpt["model"] = {k: v * sharpen if k.startswith("fusion.") else v for k, v in ckpt["model"].items()}
        torch.save(ckpt, run / "best.pt")
        model.load_state_dict(ckpt["model"])
        runs.append(str(run))
        models.append(model)
    return runs, models


def g2d(runs, *flags, modalities=AUDIO_VISUAL, fusion="concat", mmcosine=False):
    model = tiny_classifier(3, fusion, mmcosine, seed=7, modalities=modalities)
    method = build(method_args("g2d", "--g2d_teachers", *runs, *flags, modalities=modalities), modalities)
    method.configure_model(model)
    return model, method


def run_step(model, method, inputs, labels, epoch=1):
    """One training step at learning rate 0: the gradients stay in .grad; returns (loss, log)."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    step = Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, epoch, 0)
    captured = {}
    original = method.loss
    method.loss = lambda out, y, e: captured.setdefault("loss", original(out, y, e))
    try:
        _, log = method.train_step(step)
    finally:
        del method.loss  # the class's own again
    return captured["loss"], log


def expected_loss(model, teachers, names, inputs, labels, average, tau, ce_w, logit_w, feature_w):
    with torch.no_grad():
        out = model(inputs)
        z = out.logits / len(names) if average else out.logits
        log_student = torch.log_softmax(z / tau, dim=1)
        loss = ce_w * -torch.log_softmax(z, dim=1).gather(1, labels[:, None]).mean()
        for m, teacher in zip(names, teachers):
            p = torch.softmax(teacher(inputs).logits / tau, dim=1)
            kl = (p * (p.log() - log_student)).sum(1).mean() * tau ** 2
            mse = (out.enc[m] - teacher.encoders[m](inputs[m])).pow(2).mean()
            loss = loss + logit_w * kl + feature_w * mse
    return loss.item()


@pytest.mark.parametrize("modalities", [AUDIO_VISUAL, THREE], ids=["av", "xyz"])
@pytest.mark.parametrize("average,tau,weights", [(True, 1.0, (1.0, 1.0, 1.0)), (False, 2.0, (0.5, 2.0, 3.0))])
def test_loss_is_ce_plus_each_teachers_kl_and_feature_mse(tmp_path, modalities, average, tau, weights):
    runs, teachers = teacher_runs(tmp_path, modalities)
    ce_w, logit_w, feature_w = weights
    model, method = g2d(runs, "--g2d_average_logits", str(average), "--g2d_temperature", str(tau),
                        "--g2d_ce_weight", str(ce_w), "--g2d_logit_weight", str(logit_w),
                        "--g2d_feature_weight", str(feature_w), modalities=modalities)
    inputs, labels = tiny_batch(6, modalities=modalities)
    loss, log = run_step(model, method, inputs, labels)
    names = [m.name for m in modalities]
    assert loss.item() == pytest.approx(expected_loss(model, teachers, names, inputs, labels, average, tau, ce_w,
                                                      logit_w, feature_w), rel=1e-5)
    tags = [method.tags[m] for m in names]  # a / v on the audio-visual scripts
    assert all(log[f"g2d_kl_{t}"] > 0 and log[f"g2d_mse_{t}"] > 0 for t in tags)


def test_the_default_average_divides_the_fused_logits_by_the_number_of_modalities(tmp_path):
    runs, teachers = teacher_runs(tmp_path, AUDIO_VISUAL)
    model, method = g2d(runs)
    assert method.args.g2d_average_logits and method.args.g2d_temperature == 1.0
    inputs, labels = tiny_batch(6)
    loss, _ = run_step(model, method, inputs, labels)
    names = ["audio", "visual"]
    assert loss.item() == pytest.approx(expected_loss(model, teachers, names, inputs, labels, True, 1.0, 1, 1, 1),
                                        rel=1e-5)
    assert loss.item() != pytest.approx(expected_loss(model, teachers, names, inputs, labels, False, 1.0, 1, 1, 1),
                                        rel=1e-3)


def teacher_scores(teachers, names, inputs, labels):
    """sum over the batch of each teacher's softmax probability of the true class."""
    with torch.no_grad():
        return {m: torch.softmax(t(inputs).logits, 1)[torch.arange(len(labels)), labels].sum().item()
                for m, t in zip(names, teachers)}


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("modalities", [AUDIO_VISUAL, THREE], ids=["av", "xyz"])
def test_smp_zeroes_the_conv_gradients_of_the_encoder_whose_teacher_is_most_confident(tmp_path, modalities):
    runs, teachers = teacher_runs(tmp_path, modalities)
    names = [m.name for m in modalities]
    inputs, _ = tiny_batch(6, modalities=modalities)
    leaders = []
    for favoured, teacher in zip(names, teachers):
        with torch.no_grad():  # the class this teacher is surest of, and the others least
            probs = {m: torch.softmax(t(inputs).logits, 1) for m, t in zip(names, teachers)}
            labels = (probs[favoured] - sum(p for m, p in probs.items() if m != favoured)).argmax(1)
        scores = teacher_scores(teachers, names, inputs, labels)
        leader = max(scores, key=scores.get)
        leaders.append(leader)
        model, method = g2d(runs, modalities=modalities)
        reference = copy.deepcopy(model)
        _, log = run_step(model, method, inputs, labels, epoch=1)
        # the unmodulated gradients: the same step outside the window (0-based epoch 151 > 150)
        run_step(reference, method, inputs, labels, epoch=152)
        mine, plain = grads(model), grads(reference)
        assert mine.keys() == plain.keys()
        for name, g in mine.items():
            if name.startswith(f"encoders.{leader}.") and g.dim() == 4:
                assert torch.count_nonzero(g) == 0 and torch.count_nonzero(plain[name]) > 0, name
            else:
                assert torch.equal(g, plain[name]), name
        assert {m: log[f"g2d_coeff_{method.tags[m]}"] for m in names} == {m: float(m != leader) for m in names}
        for m in names:
            assert log[f"g2d_teacher_conf_{method.tags[m]}"] == pytest.approx(scores[m] / len(labels), rel=1e-5)
    assert leaders == names  # each teacher led once: both directions (and every modality) were checked


def test_smp_acts_in_the_authors_0_to_150_window(tmp_path):
    runs, _ = teacher_runs(tmp_path, AUDIO_VISUAL)
    _, method = g2d(runs)
    assert method.active(1) and method.active(151) and not method.active(152)
    _, method = g2d(runs, "--modulation_starts", "2", "--modulation_ends", "4")
    assert [method.active(e) for e in range(1, 7)] == [False, False, True, True, True, False]


def test_a_tie_for_the_most_confident_teacher_modulates_none():
    assert prioritised({"audio": 8.0, "visual": 8.0}) == {"audio": 1.0, "visual": 1.0}
    assert prioritised({"audio": 8.0, "visual": 7.5}) == {"audio": 0.0, "visual": 1.0}
    assert prioritised({"audio": 2.0, "visual": 7.5}) == {"audio": 1.0, "visual": 0.0}
    assert prioritised({"x": 3.0, "y": 5.0, "z": 5.0}) == {"x": 1.0, "y": 1.0, "z": 1.0}
    assert prioritised({"x": 6.0, "y": 5.0, "z": 5.0}) == {"x": 0.0, "y": 1.0, "z": 1.0}


def test_teachers_are_frozen_whole_models_in_eval_mode_outside_the_student(tmp_path):
    runs, teachers = teacher_runs(tmp_path, AUDIO_VISUAL, fusion="concat", mmcosine=True)
    model, method = g2d(runs, fusion="sum")  # the teachers keep their own head
    inputs, labels = tiny_batch(6)
    before = {m: copy.deepcopy(t.state_dict()) for m, t in method.teachers.items()}
    run_step(model, method, inputs, labels)
    run_step(model, method, inputs, labels)
    student = {id(p) for p in model.parameters()}
    for (m, teacher), original in zip(method.teachers.items(), teachers):
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        assert not student & {id(p) for p in teacher.parameters()}
        assert all(torch.equal(v, before[m][k]) for k, v in teacher.state_dict().items())  # BN statistics too
        with torch.no_grad():
            assert torch.allclose(teacher(inputs).logits, original(inputs).logits, atol=1e-6)
    assert method.teacher_out is None and method.state_dict() == {}  # nothing of a step stays for a checkpoint


def test_bad_teachers_are_one_clear_error(tmp_path):
    runs, _ = teacher_runs(tmp_path, AUDIO_VISUAL)
    with pytest.raises(DataError, match="--method g2d needs --g2d_teachers AUDIO_RUN VISUAL_RUN"):
        build(method_args("g2d"))
    with pytest.raises(DataError, match="is not a audio_only run"):
        g2d(runs[::-1])
    with pytest.raises(DataError, match="no best.pt"):
        g2d([runs[0], str(tmp_path)])


@pytest.mark.parametrize("flags,message", [([], "--method g2d needs --g2d_teachers"),
                                           (["--g2d_teachers", "A", "B", "--g2d_temperature", "0"],
                                            "--g2d_temperature")])
def test_bad_flags_exit_2_with_one_line(demo_root, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "run"), "--epochs", "1",
                      "--method", "g2d", *flags, *TINY_FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and message in err[0] and "error" in err[0]
