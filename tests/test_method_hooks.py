"""The hooks the 2024-2025 methods plug into, against direct computations: entries in a method's order and
batches that never mix two flags (Data Remixing, BSS), encoders frozen in eval mode (DI-MML's second stage), the
combiners over separate uni-modal heads (BSS, IPRM, DI-MML), and IPRM's geodesic mixup fusion."""
import math

import pytest
import torch
import torch.nn.functional as F

from helpers.tiny_models import tiny_batch, tiny_classifier
from models.fusion import GeodesicMixup
from models.heads import CertaintyWeighted, HeadsSum
from utils.build import match_checkpoint_architecture
from utils.sampling import ResumableBatches, SeededSampler, TrainBatches


def entries():
    # clips 0..9; flags: three of modality 1, then five of 0, then two of 1
    return [(i, f) for i, f in zip(range(10), [1, 1, 1, 0, 0, 0, 0, 0, 1, 1])]


def test_ordered_entries_keep_the_methods_order_and_shuffled_ones_do_not():
    sampler = SeededSampler(range(10), seed=3)
    sampler.set_epoch(2)
    sampler.set_entries(entries(), ordered=True)
    assert [(k[0], k[2]) for k in sampler] == entries()
    sampler.set_entries(entries())
    shuffled = [(k[0], k[2]) for k in sampler]
    assert sorted(shuffled) == sorted(entries()) and shuffled != entries()


def test_homogeneous_batches_end_where_the_flag_changes():
    sampler = SeededSampler(range(10), seed=3)
    sampler.set_entries(entries(), ordered=True, homogeneous=True)
    batches = TrainBatches(sampler, batch_size=4, drop_single=True)
    flags = [[k[2] for k in b] for b in batches]
    assert flags == [[1, 1, 1], [0, 0, 0, 0], [1, 1]]  # the fifth 0 alone: a batch of one is left out
    assert len(batches) == 3
    kept = TrainBatches(sampler, batch_size=4, drop_single=False)
    assert [[k[0] for k in b] for b in kept] == [[0, 1, 2], [3, 4, 5, 6], [7], [8, 9]]
    resumable = ResumableBatches(kept)  # a run resumed after two steps draws the rest
    resumable.skip = 2
    assert len(resumable) == 2 and [[k[0] for k in b] for b in resumable] == [[7], [8, 9]]
    sampler.set_entries(entries(), ordered=True)  # not homogeneous: plain batches of 4
    assert [len(b) for b in TrainBatches(sampler, 4, True)] == [4, 4, 2]


def test_frozen_encoders_stay_in_eval_mode_and_keep_their_statistics():
    model = tiny_classifier(3, "concat")
    model.freeze_encoders(["audio"])
    model.train()
    audio_bn = model.encoders["audio"].trunk[1]
    before = audio_bn.running_mean.clone()
    visual_before = model.encoders["visual"].trunk[1].running_mean.clone()
    inputs, labels = tiny_batch()
    F.cross_entropy(model(inputs).logits, labels).backward()
    assert not audio_bn.training and model.encoders["visual"].training
    assert torch.equal(audio_bn.running_mean, before)
    assert not torch.equal(model.encoders["visual"].trunk[1].running_mean, visual_before)
    assert all(p.grad is None and not p.requires_grad for p in model.encoders["audio"].parameters())
    assert all(p.grad is not None for p in model.encoders["visual"].parameters())


def test_the_sum_of_separate_heads_and_the_certainty_weighted_ensemble():
    torch.manual_seed(0)
    heads = {"audio": torch.randn(5, 3), "visual": torch.randn(5, 3)}
    fused = torch.randn(5, 3)
    _, only_heads = HeadsSum(3)({}, fused, heads)
    _, with_fused = HeadsSum(3, with_fused=True)({}, fused, heads)
    assert torch.equal(only_heads, heads["audio"] + heads["visual"])
    assert torch.equal(with_fused, heads["audio"] + heads["visual"] + fused)
    _, ensemble = CertaintyWeighted(3, temperature=0.5)({}, fused, heads)
    for i in range(5):  # per sample: softmax over heads of (largest probability / T)
        parts = [heads["audio"][i], heads["visual"][i], fused[i]]
        top = torch.tensor([F.softmax(z, 0).max().item() for z in parts])
        w = torch.exp(top / 0.5) / torch.exp(top / 0.5).sum()
        torch.testing.assert_close(ensemble[i], sum(w[k] * parts[k] for k in range(3)))
    with pytest.raises(ValueError, match="separate uni-modal heads"):
        HeadsSum(3)({}, fused, None)


def slerp(x, y, wx, wy):
    """The authors' slerp (main_av.py), per sample, written out."""
    out = []
    for a, b in zip(x, y):
        a, b = a / a.norm(), b / b.norm()
        theta = math.acos(max(-1.0, min(1.0, float(a @ b))))
        out.append((math.sin(wx * theta) * a + math.sin(wy * theta) * b) / (math.sin(theta) + 1e-8))
    return torch.stack(out)


def test_geodesic_mixup_is_the_slerp_of_the_two_features():
    torch.manual_seed(1)
    fusion = GeodesicMixup(3, ["audio", "visual"], dim=6).double()
    x, y = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    feat, logits = fusion({"audio": x, "visual": y})
    torch.testing.assert_close(feat["audio"] + feat["visual"], slerp(x, y, 0.5, 0.5))
    torch.testing.assert_close(logits, fusion.fc_out(slerp(x, y, 0.5, 0.5)))
    fusion.weights = {"audio": 0.8, "visual": 0.3}  # a method's weights for its step; not symmetric in the two
    feat, _ = fusion({"audio": x, "visual": y})
    torch.testing.assert_close(feat["audio"] + feat["visual"], slerp(x, y, 0.8, 0.3))
    assert not torch.allclose(feat["audio"] + feat["visual"], slerp(x, y, 0.3, 0.8))
    with pytest.raises(ValueError, match="exactly two"):
        GeodesicMixup(3, ["x", "y", "z"])


@pytest.mark.parametrize("mmcosine", [False, True])
def test_a_model_with_the_geodesic_fusion_and_summed_heads_evaluates_from_its_checkpoint(mmcosine):
    model = tiny_classifier(3, "concat", mmcosine=mmcosine)
    model.add_unimodal_heads()
    model.set_head({"geodesic": {}, "combine": {"name": "heads_sum", "with_fused": True}})
    model.fusion.mix.copy_(torch.tensor([0.7, 0.4]))
    model.eval()
    inputs, _ = tiny_batch()
    out = model(inputs)
    mix = out.feat["audio"] + out.feat["visual"]
    if mmcosine:  # the whole mix's cosine: the mixing weights count
        expected = model.scaling * F.normalize(mix, dim=1) @ F.normalize(model.fusion.fc_out.weight, dim=1).T
    else:
        expected = model.fusion.fc_out(mix)
    torch.testing.assert_close(out.fused, expected)
    torch.testing.assert_close(out.logits, out.heads["audio"] + out.heads["visual"] + out.fused)
    assert all(torch.equal(out.unimodal[m], out.heads[m]) for m in ("audio", "visual"))  # each modality: its head
    config = {"head": model.head_spec, "unimodal_heads": True}
    again = tiny_classifier(3, "concat", mmcosine=mmcosine, seed=5)
    match_checkpoint_architecture(again, config)
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again.eval()(inputs).logits, out.logits)
