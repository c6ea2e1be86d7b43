"""AUG (NeurIPS 2025): the head's logits, the boosting loss, the alternating step and the adaptive assignment against
computations written out here as the authors' code does them (njustkmg/NeurIPS25-AUG model/AudioVideo.py
classfier, train_CREMAD.py); a grown model rebuilt from its head spec; a run resumed across a growth point equal to
a straight one, and its grown checkpoint evaluating to the logged numbers."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

import main_CD
from conftest import TINY_FLAGS
from dataset.errors import DataError
from helpers.stopped_runs import assert_same_numbers, rows, stop_after_first_step
from helpers.tiny_models import THREE, build, method_args, tiny_batch, tiny_classifier
from utils.methods.aug import boosting_loss, modality_to_grow
from utils.methods.step import Step
from utils.precision import Precision


def aug(*flags, modalities=None):
    args = method_args("aug", *flags) if modalities is None else method_args("aug", *flags, modalities=modalities)
    return build(args) if modalities is None else build(args, modalities)


def grown_model(method, order=("visual", "audio", "visual"), seed=0):
    """A tiny model with AUG's head and learners added in `order`."""
    model = tiny_classifier(3, "concat", seed=seed)
    method.configure_model(model)
    optimizer = torch.optim.SGD(method.param_groups(model), lr=0.1)
    for name in order:
        method.grow(model, optimizer, name)
    return model, optimizer


def authors_classfier(head, x, name):
    """Their classfier: feature = sum over the embedding and the learners of fc_out(relu(layer(x))), o_fea = the sum
    without the newest, add_fea = the newest's logits (None without an added learner)."""
    feature = head.fc_out(F.relu(head.embedding[name](x)))
    o_fea, add_fea = feature, None
    for i, layer in enumerate(head.learners[name]):
        add_fea = head.fc_out(F.relu(layer(x)))
        feature = feature + add_fea
        if i < len(head.learners[name]) - 1:
            o_fea = feature
    return feature, o_fea, add_fea


def authors_loss(feature, o_fea, add_fea, labels, weight=0.5):
    """Their loss with one-hot labels and nn.CrossEntropyLoss(reduction='none') on probability targets."""
    y = F.one_hot(labels, feature.shape[1]).float()
    loss = F.cross_entropy(feature, labels)
    if add_fea is None:
        return loss
    kl = y * o_fea.detach().softmax(1)
    return (loss + F.cross_entropy(o_fea, labels) + F.cross_entropy(add_fea, labels)
            - weight * F.cross_entropy(add_fea, kl, reduction="none").mean())


def test_the_head_gives_the_authors_logits_and_the_fixed_merge():
    method = aug()
    model, _ = grown_model(method)
    model.eval()
    inputs, _ = tiny_batch()
    out = model(inputs)
    for name in ("audio", "visual"):
        feature, _, _ = authors_classfier(model.fusion, out.enc[name], name)
        torch.testing.assert_close(out.unimodal[name], feature)
    torch.testing.assert_close(out.logits, 0.4 * out.unimodal["audio"] + 0.6 * out.unimodal["visual"])
    assert not torch.allclose(out.logits, 0.6 * out.unimodal["audio"] + 0.4 * out.unimodal["visual"])
    assert model.head_spec["learners"]["added"] == ["visual", "audio", "visual"]


def test_the_boosting_loss_is_theirs_and_weighs_the_newest_learner_by_the_others_miss():
    torch.manual_seed(2)
    labels = torch.tensor([0, 1, 2, 1])
    feature, o_fea, add_fea = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3)
    for weight in (0.5, 0.2, 0.0):
        torch.testing.assert_close(boosting_loss(feature, o_fea, add_fea, labels, weight),
                                   authors_loss(feature, o_fea, add_fea, labels, weight))
    # the last two terms: -(1 - w p_o(y)) log p_a(y)
    p_o = o_fea.softmax(1)[torch.arange(4), labels]
    log_p_a = add_fea.log_softmax(1)[torch.arange(4), labels]
    rest = F.cross_entropy(feature, labels) + F.cross_entropy(o_fea, labels)
    torch.testing.assert_close(boosting_loss(feature, o_fea, add_fea, labels, 0.5),
                               rest + (-(1 - 0.5 * p_o) * log_p_a).mean())
    torch.testing.assert_close(boosting_loss(feature, None, None, labels, 0.5), F.cross_entropy(feature, labels))


def test_the_step_updates_audio_then_visual_through_the_shared_classifier():
    """One step against their loop written out: audio's loss and SGD step, then visual's through the fc_out that
    audio's step moved; each modality's loss reaches its own encoder, embedding and learners only."""
    method = aug()
    model, _ = grown_model(method, order=("visual", "audio", "visual"))
    reference = copy.deepcopy(model)
    inputs, labels = tiny_batch(6)
    lr = 0.1
    optimizer = torch.optim.SGD(method.param_groups(model), lr=lr)
    out, logged = method.train_step(Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs,
                                         labels, 1, 0))

    enc = {m: reference.encoders[m](inputs[m]) for m in ("audio", "visual")}
    head = reference.fusion
    for name in ("audio", "visual"):
        loss = authors_loss(*authors_classfier(head, enc[name], name), labels)
        params = [*reference.encoders[name].parameters(), *head.embedding[name].parameters(),
                  *head.learners[name].parameters(), *head.fc_out.parameters()]
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * g
        assert logged[f"aug_loss_{name[0]}"] == pytest.approx(loss.item(), rel=1e-5)
    for (key, mine), theirs in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(mine, theirs, msg=key)
    assert out.logits.shape == (6, 3)


def test_frozen_learners_stay_random_projections():
    method = aug("--aug_learners_train", "False")
    model, optimizer = grown_model(method, order=("audio",))
    assert method.new_param_groups() == []
    learner = model.fusion.learners["audio"][0]
    before = learner.weight.detach().clone()
    assert not learner.weight.requires_grad
    inputs, labels = tiny_batch(6)
    embedding = model.fusion.embedding["audio"].weight.detach().clone()
    method.train_step(Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, 1, 0))
    assert torch.equal(learner.weight, before) and not torch.equal(model.fusion.embedding["audio"].weight, embedding)


def test_the_ratio_picks_the_modality_that_gets_a_learner():
    assert modality_to_grow({"audio": 1.2, "visual": 1.0}, 1.0) == "visual"   # audio ahead: visual gets one
    assert modality_to_grow({"audio": 1.0, "visual": 1.2}, 1.0) == "audio"
    assert modality_to_grow({"audio": 1.005, "visual": 1.0}, 1.0) is None    # within lambda +- 0.01
    assert modality_to_grow({"audio": 1.2, "visual": 1.0}, 1.3) == "audio"   # lambda moves the balance point
    assert modality_to_grow({"x": 3.0, "y": 1.0, "z": 2.0}, 1.0) == "y"       # M modalities: the weakest
    assert modality_to_grow({"x": 1.0, "y": 1.0, "z": 1.0}, 1.0) is None


def test_learners_are_added_after_the_first_epoch_and_every_n_and_join_the_optimizer():
    method = aug("--aug_every", "3", "--aug_lambda", "0.1")  # lambda 0.1: audio counts as ahead, visual gets them
    model = tiny_classifier(3, "concat")
    method.configure_model(model)
    optimizer = torch.optim.SGD(method.param_groups(model), lr=0.1, momentum=0.9)
    inputs, labels = tiny_batch(6)
    for epoch in range(1, 5):
        if epoch == 4:
            optimizer.param_groups[0]["lr"] = 0.001  # a decayed rate: the learner added now joins at it
        method.start_epoch(epoch, model, optimizer)
        groups = method.new_param_groups()
        assert len(groups) == (epoch in (2, 4)) and method.new_param_groups() == []  # decided after epochs 1 and 3
        for group in groups:
            assert group["params"] == list(model.fusion.learners["visual"][-1].parameters())
            assert group["lr"] == (0.001 if epoch == 4 else 0.1) and group["momentum"] == 0.9
            optimizer.add_param_group(group)
        method.train_step(Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels,
                               epoch, 0))
        scores = dict(method.scores)
        record = method.end_epoch(epoch, model)
        assert record["aug_ratio"] == pytest.approx(scores["audio"] / scores["visual"])
        assert method.pending == ("visual" if epoch in (1, 3) else None)
    assert model.fusion.added == ["visual", "visual"] == model.head_spec["learners"]["added"]
    assert record["aug_learners_v"] == 2 and record["aug_learners_a"] == 0


def test_mmcosine_scores_each_sum_of_learners_as_cosine_logits():
    method = aug()
    model = tiny_classifier(3, "concat", mmcosine=True)
    method.configure_model(model)
    optimizer = torch.optim.SGD(method.param_groups(model), lr=0.1)
    method.grow(model, optimizer, "audio")
    assert not model.fusion.fc_out.bias.requires_grad
    inputs, labels = tiny_batch(6)
    method.train_step(Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels, 1, 0))
    out = model.eval()(inputs)
    head = model.fusion
    summed = F.relu(head.embedding["audio"](out.enc["audio"])) + F.relu(head.learners["audio"][0](out.enc["audio"]))
    cosine = F.normalize(summed, dim=1) @ F.normalize(head.fc_out.weight, dim=1).t()
    torch.testing.assert_close(out.unimodal["audio"], model.scaling * cosine)


def test_a_grown_model_is_rebuilt_from_its_head_spec_with_the_same_optimizer_groups():
    method = aug()
    model, _ = grown_model(method, order=("visual", "audio", "visual"))
    groups = method.param_groups(model)
    rebuilt = tiny_classifier(3, "concat", seed=4)
    method.configure_model(rebuilt)
    rebuilt.set_head(model.head_spec)  # as the runner does for a resumed run (and evaluation)
    rebuilt.load_state_dict(model.state_dict())
    again = method.param_groups(rebuilt)
    names = {id(p): n for n, p in model.named_parameters()}
    rebuilt_names = {id(p): n for n, p in rebuilt.named_parameters()}
    assert [[names[id(p)] for p in g["params"]] for g in groups] == \
        [[rebuilt_names[id(p)] for p in g["params"]] for g in again]
    assert [[names[id(p)] for p in g["params"]] for g in groups[1:]] == [
        ["fusion.learners.visual.0.weight", "fusion.learners.visual.0.bias"],
        ["fusion.learners.audio.0.weight", "fusion.learners.audio.0.bias"],
        ["fusion.learners.visual.1.weight", "fusion.learners.visual.1.bias"]]
    inputs, _ = tiny_batch()
    torch.testing.assert_close(rebuilt.eval()(inputs).logits, model.eval()(inputs).logits)


def test_three_modalities_take_turns_and_sum_at_test():
    method = aug(modalities=THREE)
    model = tiny_classifier(3, "concat", modalities=THREE)
    method.configure_model(model)
    optimizer = torch.optim.SGD(method.param_groups(model), lr=0.1)
    inputs, labels = tiny_batch(6, modalities=THREE)
    _, logged = method.train_step(Step(model, model, optimizer, Precision("off", torch.device("cpu")), inputs, labels,
                                       1, 0))
    assert set(logged) == {"aug_loss_x", "aug_loss_y", "aug_loss_z"}
    out = model.eval()(inputs)
    torch.testing.assert_close(out.logits, sum(out.unimodal.values()))
    with pytest.raises(DataError, match="--aug_merge_alpha weighs two modalities"):
        aug("--aug_merge_alpha", "0.5", modalities=THREE)


def test_other_fusions_are_refused():
    with pytest.raises(DataError, match="use --fusion_method concat"):
        aug().configure_model(tiny_classifier(3, "sum"))


def test_a_bad_flag_is_one_error_line(demo_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "run"), "--method", "aug",
                      "--aug_every", "0", *TINY_FLAGS])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and "--aug_every" in err and err.count("\n") == 1


def test_a_resume_across_a_growth_point_equals_a_straight_run_and_the_grown_checkpoint_evaluates(
        demo_root, tmp_path, monkeypatch):
    """--aug_every 1: the first epoch's ratio adds a learner to visual at the second epoch's start (lambda 0.1).
    2 epochs straight equal 1 epoch, a --resume that grows the head and is stopped after the second epoch's first
    step, and a --resume for the rest (the grown head rebuilt from last.pt, its optimizer group); the grown last.pt
    alone gives the logged test numbers."""
    flags = ["--train", "--data_root", str(demo_root), "--method", "aug", "--aug_every", "1", "--aug_lambda", "0.1",
             *TINY_FLAGS, "--learning_rate", "0.001"]
    main_CD.main([*flags, "--run_dir", str(tmp_path / "straight"), "--epochs", "2"])
    main_CD.main([*flags, "--run_dir", str(tmp_path / "resumed"), "--epochs", "1"])
    first = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert first["model_config"]["head"]["learners"]["added"] == [] and first["method"]["pending"] == "visual"
    with monkeypatch.context() as patch:
        stop_after_first_step(patch)
        with pytest.raises(SystemExit) as stopped:
            main_CD.main(["--resume", str(tmp_path / "resumed"), "--epochs", "2", "--no_progress"])
    partial = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert stopped.value.code == 143 and partial["partial"]["steps"] == 1
    assert partial["model_config"]["head"]["learners"]["added"] == ["visual"]
    main_CD.main(["--resume", str(tmp_path / "resumed"), "--epochs", "2", "--no_progress"])
    straight, resumed = rows(tmp_path / "straight"), rows(tmp_path / "resumed")
    assert (straight[-1]["aug_learners_a"], straight[-1]["aug_learners_v"]) == (0, 1)
    assert_same_numbers(straight[-1], resumed[-1])
    last = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    assert last["model_config"]["head"]["learners"]["added"] == ["visual"]
    assert len(last["optimizer"]["param_groups"]) == 2
    stats = main_CD.main(["--ckpt_path", str(tmp_path / "straight" / "last.pt"), "--no_progress"])
    logged = straight[-1]
    assert stats["acc"] == pytest.approx(logged["test_acc"])
    assert stats["loss"] == pytest.approx(logged["test_loss"], rel=1e-5) or not math.isfinite(logged["test_loss"])
