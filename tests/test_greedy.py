"""Greedy: the MMTM mid-level fusion (cross-modal gates, cutting one modality off them), the
conditional learning speed against a direct computation, the re-balancing schedule, and the
method end to end (checkpoint evaluation restores the architecture; the probe reads it)."""
import json
import math
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import main_CD
import main_Vox
from conftest import ROOT, TINY_FLAGS
from dataset.modalities import AUDIO_VISUAL
from helpers.tiny_models import resnet_classifier
from utils.methods import build_method


def greedy_args(**kw):
    return SimpleNamespace(**{"method": "greedy", "greedy_epsilon": 0.01, "greedy_window": 3, "greedy_starts": 2,
                              "greedy_loss": "fused", "greedy_main_with_head": False, **kw})


def greedy(**kw):
    return build_method(greedy_args(**kw), AUDIO_VISUAL)


@pytest.fixture
def greedy_model():
    torch.manual_seed(0)
    model = resnet_classifier(3, "concat")
    greedy().configure_model(model)
    inputs = {"audio": torch.randn(4, 1, 64, 48), "visual": torch.randn(4, 3, 2, 32, 32)}
    return model, inputs, torch.tensor([0, 1, 2, 0])


def test_mmtm_gates_carry_information_across_and_a_cut_stops_it(greedy_model):
    model, inputs, _ = greedy_model
    audio, visual = inputs["audio"], inputs["visual"]
    other_visual, other_audio = torch.randn_like(visual), torch.randn_like(audio)
    model.train()
    with torch.no_grad():
        a = model.encode(inputs)["audio"]
        assert not torch.allclose(model.encode({"audio": audio, "visual": other_visual})["audio"], a)  # hears visual
        model.mid_fusion.cut = "audio"
        means = {name: b.clone() for name, b in model.mid_fusion.named_buffers()}
        cut = model.encode(inputs)
        model.mid_fusion.load_state_dict(means, strict=False)  # each training forward moves the running mean; undo that
        # ... not while cut off; visual still hears audio
        torch.testing.assert_close(model.encode({"audio": audio, "visual": other_visual})["audio"], cut["audio"])
        assert not torch.allclose(model.encode({"audio": other_audio, "visual": visual})["visual"], cut["visual"])
        model.mid_fusion.cut = None
    # Without mid-level fusion the encoders are independent: the model has no MMTM path.
    assert model.mid_fusion_name == "mmtm" and len(model.mid_fusion.mmtms) == 3


def test_gate_running_mean_is_the_mean_over_training_forwards(greedy_model):
    model, inputs, _ = greedy_model
    mmtm = model.mid_fusion.mmtms[0]
    seen = []
    hook = mmtm.excite_audio.register_forward_hook(lambda m, i, o: seen.append(torch.sigmoid(o).mean(0).detach()))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model({m: torch.randn_like(x) for m, x in inputs.items()})
        model.eval()
        model(inputs)  # evaluation leaves the running mean alone
    hook.remove()
    torch.testing.assert_close(mmtm.mean_gate_audio, torch.stack(seen[:3]).mean(0))
    assert mmtm.steps.item() == 3


def relative_speed_direct(params):
    return sum((p.grad ** 2).sum().item() for p in params) / sum((p ** 2).sum().item() for p in params)


def test_speed_gap_and_rebalancing_schedule(greedy_model):
    model, inputs, labels = greedy_model
    model.train()
    F.cross_entropy(model(inputs).logits, labels).backward()
    bypass = model.mid_fusion.parameter_groups()
    main = {"audio": list(model.encoders["audio"].parameters()), "visual": list(model.encoders["visual"].parameters())}
    bdr = {m: math.log10(relative_speed_direct(bypass[m]) / relative_speed_direct(main[m])) for m in main}
    expected_gap = bdr["audio"] - bdr["visual"]

    method = greedy(greedy_epsilon=0.0)
    log = method.before_step(model, None, labels, epoch=1)          # before --greedy_starts: measure only
    # The method takes float32 norms on the parameters' device; the reference sums in float64.
    assert log["greedy_speed_gap"] == pytest.approx(expected_gap, rel=1e-4) and model.mid_fusion.cut is None
    slow = "audio" if expected_gap > 0 else "visual"
    # The same gradients again: the sums grow, the gap stays; now windows open for `slow`.
    cuts = []
    for _ in range(6):
        cuts.append(method.before_step(model, None, labels, epoch=2))
    used = [next((m for m in ("audio", "visual") if c[f"greedy_rebalancing_{m}"]), None) for c in cuts]
    # step 1 decides (its own forward was normal), the next 3 (= window) forwards are cut, then it measures again.
    assert used == [None, slow, slow, slow, None, slow]
    # Speeds are summed only on measuring steps: the first call, and calls 1 and 5 of the loop.
    assert method.speed_sums["main_audio"] == pytest.approx(3 * relative_speed_direct(main["audio"]), rel=1e-4)

    calm = greedy(greedy_epsilon=1e9)
    for _ in range(3):
        calm.before_step(model, None, labels, epoch=5)
    assert model.mid_fusion.cut is None and not calm.rebalancing


def test_nyukat_options_count_the_head_in_the_main_path_and_sum_branch_losses(greedy_model):
    model, inputs, labels = greedy_model
    model.train()
    out = model(inputs)
    method = greedy(greedy_loss="branches", greedy_main_with_head=True)
    loss = method.loss(out, labels, 1)
    expected = F.cross_entropy(out.unimodal["audio"], labels) + F.cross_entropy(out.unimodal["visual"], labels)
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    w, g = model.fusion.fc_out.weight, model.fusion.fc_out.weight.grad
    bypass = model.mid_fusion.parameter_groups()
    encoders = {m: list(model.encoders[m].parameters()) for m in ("audio", "visual")}
    heads = {"audio": (w[:, :512], g[:, :512]), "visual": (w[:, 512:], g[:, 512:])}
    main = {m: (sum((p.grad ** 2).sum().item() for p in ps) + (heads[m][1] ** 2).sum().item())
            / (sum((p ** 2).sum().item() for p in ps) + (heads[m][0] ** 2).sum().item()) for m, ps in encoders.items()}
    bdr = {m: math.log10(relative_speed_direct(bypass[m]) / main[m]) for m in main}
    log = method.before_step(model, None, labels, epoch=1)
    assert log["greedy_speed_gap"] == pytest.approx(bdr["audio"] - bdr["visual"], rel=1e-4)


def test_greedy_on_another_pair_measures_and_cuts_by_name():
    """Any two modalities with ResNet trunks: d = BDR_first - BDR_second in the dataset's order, keys by name."""
    from dataset.modalities import Modality
    from models import AudioEncoder, MultiModalClassifier, VisualEncoder
    pair = (Modality("x", "x", None), Modality("y", "y", None))
    torch.manual_seed(0)
    model = MultiModalClassifier(3, {"x": AudioEncoder(), "y": VisualEncoder()}, "concat")
    method = build_method(greedy_args(greedy_epsilon=0.0, greedy_starts=1), pair)
    method.configure_model(model)
    model.train()
    inputs = {"x": torch.randn(4, 1, 64, 48), "y": torch.randn(4, 3, 2, 32, 32)}
    F.cross_entropy(model(inputs).logits, torch.tensor([0, 1, 2, 0])).backward()
    bypass = model.mid_fusion.parameter_groups()
    bdr = {m: math.log10(relative_speed_direct(bypass[m]) / relative_speed_direct(list(model.encoders[m].parameters())))
           for m in ("x", "y")}
    log = method.before_step(model, None, None, epoch=1)
    assert set(log) == {"greedy_rebalancing_x", "greedy_rebalancing_y", "greedy_speed_gap"}
    assert log["greedy_speed_gap"] == pytest.approx(bdr["x"] - bdr["y"], rel=1e-4)
    assert model.mid_fusion.cut == ("x" if bdr["x"] > bdr["y"] else "y")  # the window opens for the slower branch


def test_greedy_trains_evaluates_and_probes_end_to_end(demo_root, tmp_path, capsys):
    run = tmp_path / "greedy"
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(run), "--epochs", "2", "--method", "greedy",
                  "--greedy_starts", "1", "--mmcosine", "True", *TINY_FLAGS])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= r["train_greedy_rebalancing_audio"] + r["train_greedy_rebalancing_visual"] <= 1 for r in rows)
    assert math.isfinite(rows[-1]["train_greedy_speed_gap"])
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["model_config"]["mid_fusion"] == "mmtm" and "mid_fusion.mmtms.0.squeeze.weight" in ckpt["model"]
    best = max(rows, key=lambda r: r["test_acc"])
    stats = main_CD.main(["--ckpt_path", str(run / "best.pt"), "--data_root", str(demo_root), *TINY_FLAGS])
    assert stats["acc"] == pytest.approx(best["test_acc"]) and stats["loss"] == pytest.approx(best["test_loss"], rel=1e-5)
    sys.path.insert(0, str(ROOT / "scripts"))
    import linear_probe
    assert linear_probe.main(["--ckpt", str(run / "best.pt"), "--modality", "visual", "--epochs", "20"]) == 0
    assert "V-probe" in capsys.readouterr().out


def test_greedy_needs_the_resnet_trunks(tmp_path, capsys):
    from dataset.demo_voxceleb import write_voxceleb_demo
    root = write_voxceleb_demo(tmp_path / "vox", train_speakers=2, utterances_per_speaker=2, test_speakers=2,
                               test_utterances=2, image_size=32)
    with pytest.raises(SystemExit) as exit_info:
        main_Vox.main(["--train", "--method", "greedy", "--train_list", str(root / "train_list.csv"),
                       "--trial_lists", str(root / "vox2_test.csv"), "--audio_root", str(root / "wav"),
                       "--visual_root", str(root / "faces"), "--run_dir", str(tmp_path / "run"), "--no_progress"])
    assert exit_info.value.code == 2 and "--method greedy" in capsys.readouterr().err
