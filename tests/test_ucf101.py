"""UCF-101 (RGB + TV-L1 flow): class order, the three official splits (from the lists and from the video
names), the recipes' frame picks, the flow augmentation (one crop for u and v, u negated on a flip), bad
trees, the flow encoders and their ImageNet initialisation, scripts/prepare_ucf101.py on generated videos,
and the demo tree read back."""
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import resnet18

from conftest import ROOT
from dataset.errors import DataError
from dataset.demo_ucf101 import UCF_DEMO_CLASSES, write_ucf101_demo
from dataset.flow import FlowClipTransform, flow_to_model_input
from dataset.ucf101 import FLOW, RGB, UCF101Dataset
from dataset.ucf101_recipes import RECIPES
from dataset.ucf101_splits import load_ucf101_split, official_order
from models.encoders import VisualEncoder
from models.flow_encoders import Flow2DEncoder, Flow3DEncoder
from models.imagenet_init import load_imagenet_resnet18

sys.path.insert(0, str(ROOT / "scripts"))
import prepare_ucf101  # noqa: E402


def make_video(root, stem, rgb_frames=6, flow_frames=20, size=8, level=None):
    """One video in the layout: uniform images whose grey level says the ordinal (7 * t, up to 36) unless `level`."""
    for folder, n, name in ((root / "rgb" / stem, rgb_frames, "frame_{:05d}.jpg"),
                            (root / "flow" / "u" / stem, flow_frames, "frame{:06d}.jpg"),
                            (root / "flow" / "v" / stem, flow_frames, "frame{:06d}.jpg")):
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(1, n + 1):
            value = level if level is not None else 7 * t
            mode = "RGB" if folder.parent.name == "rgb" else "L"
            Image.new(mode, (size, size), (value,) * 3 if mode == "RGB" else value).save(folder / name.format(t))


def ordinals_read(item):
    """The ordinals an item read, from the grey levels make_video gave its frames."""
    rgb, flow, _ = item
    return ([round(rgb[0, t].float().mean().item() / 7) for t in range(rgb.shape[1])],
            [round(flow[1, t].float().mean().item() / 7) for t in range(flow.shape[1])])


# ---- classes and splits
def test_class_order_is_case_insensitive_not_pythons_sort():
    names = ["JumpRope", "HammerThrow", "YoYo", "Hammering", "JumpingJack", "ApplyEyeMakeup"]
    assert official_order(names) == ["ApplyEyeMakeup", "Hammering", "HammerThrow", "JumpingJack", "JumpRope", "YoYo"]
    assert sorted(names)[1:3] == ["HammerThrow", "Hammering"]  # what BalanceBenchmark's sorted() gives


def test_class_ind_when_present_else_computed_from_the_names(tmp_path):
    for stem in ("v_JumpRope_g01_c01", "v_JumpingJack_g01_c01", "v_HandStandPushups_g09_c02"):
        (tmp_path / "rgb" / stem).mkdir(parents=True)
    computed = load_ucf101_split(tmp_path, 1)
    assert computed.classes == ["HandstandPushups", "JumpingJack", "JumpRope"]  # the folder's spelling
    assert computed.train == [("v_HandStandPushups_g09_c02", 0)]
    (tmp_path / "classInd.txt").write_text("1 JumpRope\r\n2 JumpingJack\r\n3 HandstandPushups\r\n")
    given = load_ucf101_split(tmp_path, 1)
    assert given.classes == ["JumpRope", "JumpingJack", "HandstandPushups"]
    assert sorted(given.test) == [("v_JumpRope_g01_c01", 0), ("v_JumpingJack_g01_c01", 1)]
    (tmp_path / "classInd.txt").write_text("1 JumpRope\n3 JumpingJack\n")
    with pytest.raises(DataError, match=r"classInd.txt line 2: expected '2 <Class>'"):
        load_ucf101_split(tmp_path, 1)


@pytest.mark.parametrize("split,test_groups", [(1, range(1, 8)), (2, range(8, 15)), (3, range(15, 22))])
def test_group_rule_of_each_split(tmp_path, split, test_groups):
    classes = ["ApplyEyeMakeup", "Hammering", "YoYo"]
    for cls in classes:
        for group in range(1, 26):
            for clip in range(1, 4):
                (tmp_path / "rgb" / f"v_{cls}_g{group:02d}_c{clip:02d}").mkdir(parents=True)
    data = load_ucf101_split(tmp_path, split)
    group_of = lambda samples: {int(stem.split("_g")[1][:2]) for stem, _ in samples}
    assert group_of(data.test) == set(test_groups) and group_of(data.train) == set(range(1, 26)) - set(test_groups)
    assert len(data.test) == 3 * 7 * 3 and len(data.train) == 3 * 18 * 3
    assert {label for stem, label in data.train if "YoYo" in stem} == {2}
    assert f"g{test_groups[0]:02d}-g{test_groups[-1]:02d}" in data.source


def test_official_lists_with_crlf_ids_and_handstand_pushups(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    (lists / "trainlist02.txt").write_bytes(b"HandstandPushups/v_HandStandPushups_g01_c01.avi 2\r\n"
                                            b"ApplyEyeMakeup/v_ApplyEyeMakeup_g20_c03.avi 1\r\n")
    (lists / "testlist02.txt").write_bytes(b"HandstandPushups/v_HandStandPushups_g08_c01.avi\r\n\r\n")
    data = load_ucf101_split(tmp_path, 2)
    assert data.train == [("v_HandStandPushups_g01_c01", 1), ("v_ApplyEyeMakeup_g20_c03", 0)]
    assert data.test == [("v_HandStandPushups_g08_c01", 1)] and "official split 2" in data.source
    (lists / "trainlist02.txt").write_text("HandstandPushups/v_HandStandPushups_g01_c01.avi 1\n")
    with pytest.raises(DataError, match="id 1 but HandstandPushups is class 2"):
        load_ucf101_split(tmp_path, 2)
    (lists / "trainlist02.txt").write_text("Surfing/v_Surfing_g01_c01.avi 3\n")
    with pytest.raises(DataError, match="class folder 'Surfing' is not in the class list"):
        load_ucf101_split(tmp_path, 2)
    (lists / "testlist02.txt").unlink()
    with pytest.raises(DataError, match="but no testlist02.txt beside it"):
        load_ucf101_split(tmp_path, 2)


# ---- recipes
def draws(recipe, n, train, seeds=60, rgb=False):
    out = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        out.append(recipe.rgb_ordinals(n, train) if rgb else recipe.flow_ordinals(n, train))
    return out


def test_rgb_frames_of_every_recipe():
    for recipe in RECIPES.values():
        picks = draws(recipe, 8, True, rgb=True)
        assert [sorted({p[i] for p in picks}) for i in range(3)] == [[1, 2], [3, 4], [5, 6]]
        assert recipe.rgb_ordinals(8, False) == [1, 3, 5] and recipe.rgb_ordinals(4, False) == [1, 3, 4]


def test_release_flow_16_pairs():
    release = RECIPES["release"]
    picks = draws(release, 40, True)  # seg 2
    assert [sorted({p[i] for p in picks}) for i in range(16)] == [[2 * i + 1, 2 * i + 2] for i in range(16)]
    assert release.flow_ordinals(40, False) == [2 * i + 1 for i in range(16)]
    assert release.flow_ordinals(5000, False)[-1] == 15 * 62 + 1  # at most 1,000 pairs are spread over
    assert draws(release, 10, True, seeds=3) == [[1] * 16] * 3 and release.flow_ordinals(10, False) == [1] * 16


def test_release_2d_and_balancebenchmark_flow():
    assert RECIPES["release_2d"].flow_ordinals(40, True) == [3] and RECIPES["release_2d"].flow_ordinals(2, False) == [2]
    bb = RECIPES["balancebenchmark"]
    picks = draws(bb, 30, True)  # seg 10
    assert [sorted({p[i] for p in picks}) for i in range(3)] == [list(range(10 * i + 1, 10 * i + 11)) for i in range(3)]
    assert bb.flow_ordinals(30, False) == [5, 15, 25] and bb.flow_ordinals(4, False) == [1, 2, 3]
    assert bb.flow_ordinals(2, False) == [1, 1, 1] and bb.flow_ordinals(2, True) == [1, 1, 1]


@pytest.mark.parametrize("recipe,flow_test", [("release", [2 * i + 1 for i in range(16)]), ("release_2d", [3]),
                                              ("balancebenchmark", [6, 18, 30])])
def test_items_read_the_recipes_files(tmp_path, recipe, flow_test):
    make_video(tmp_path, "v_YoYo_g01_c01", rgb_frames=7, flow_frames=36)
    test = UCF101Dataset(tmp_path, [("v_YoYo_g01_c01", 0)], train=False, recipe=recipe, image_size=8)
    rgb, flow, label = test[0]
    assert rgb.shape == (3, 3, 8, 8) and flow.shape == (2, len(flow_test), 8, 8) and rgb.dtype == flow.dtype == torch.uint8
    assert ordinals_read(test[0]) == ([1, 3, 5], flow_test)
    train = UCF101Dataset(tmp_path, [("v_YoYo_g01_c01", 0)], train=True, recipe=recipe, image_size=8)
    for seed in range(4):
        rgb_read, flow_read = ordinals_read(train[(0, seed)])
        torch.manual_seed(seed)
        wanted = RECIPES[recipe].rgb_ordinals(7, True), RECIPES[recipe].flow_ordinals(36, True)
        assert (rgb_read, flow_read) == wanted and train[(0, seed)][1].equal(train[(0, seed)][1])


# ---- flow augmentation
def test_one_crop_for_u_v_and_every_frame_and_u_negated_on_flip():
    ramp = torch.arange(32, dtype=torch.uint8).mul(8).expand(32, 32)  # grows to the right
    flow = ramp.expand(4, 2, 32, 32).clone()                           # u = v, the same in all 4 frames
    flipped = kept = 0
    for seed in range(12):
        torch.manual_seed(seed)
        out = FlowClipTransform(True, 16)(flow).int()
        u, v = out[:, 0], out[:, 1]
        assert all(out[t].equal(out[0]) for t in range(4))  # one crop / flip for the clip
        if v[0, 8, -1] > v[0, 8, 0]:                         # not flipped: u untouched
            kept += 1
            assert u.equal(v)
        else:                                               # mirrored motion: u negated, v as is
            flipped += 1
            assert u.equal(255 - v)
    assert flipped and kept
    assert FlowClipTransform(False, 16)(flow).shape == (4, 2, 16, 16)


def test_modalities_and_flow_scaling():
    assert (RGB.name, RGB.tag, FLOW.name, FLOW.tag) == ("rgb", "rgb", "flow", "flow")
    flow = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 3, 1, 1).expand(2, 2, 3, 4, 4)
    assert torch.allclose(FLOW.prepare(flow)[0, 0, :, 0, 0], torch.tensor([0.0, 0.2, 1.0]))
    assert flow_to_model_input is FLOW.prepare


# ---- bad trees
def test_missing_or_unequal_flow_is_one_line_or_skipped(tmp_path):
    make_video(tmp_path, "v_YoYo_g01_c01", flow_frames=4)
    make_video(tmp_path, "v_YoYo_g01_c02", flow_frames=4)
    make_video(tmp_path, "v_YoYo_g01_c03", flow_frames=4)
    (tmp_path / "flow" / "v" / "v_YoYo_g01_c02" / "frame000004.jpg").unlink()
    samples = [(f"v_YoYo_g01_c0{k}", 0) for k in (1, 2, 3, 4)]  # c04: not prepared at all
    with pytest.raises(DataError) as err:
        UCF101Dataset(tmp_path, samples, train=True, split_name="train split")
    text = str(err.value)
    assert "\n" not in text and text.startswith("2 video(s) of the train split cannot be read")
    assert "v_YoYo_g01_c02 (4 u but 3 v flow images)" in text and "v_YoYo_g01_c04 (no RGB frames" in text
    assert "scripts/prepare_ucf101.py" in text and "--skip_missing True" in text
    kept = UCF101Dataset(tmp_path, samples, train=True, skip_missing=True)
    assert len(kept) == 2 and kept.n_skipped == 2 and kept.labels == [0, 0]
    import shutil
    shutil.rmtree(tmp_path / "flow" / "u" / "v_YoYo_g01_c03")
    with pytest.raises(DataError, match=r"v_YoYo_g01_c03 \(no flow images in .*flow/u/v_YoYo_g01_c03\)"):
        UCF101Dataset(tmp_path, samples[2:3], train=False)


# ---- encoders and their initialisation
def test_flow_encoder_shapes():
    torch.manual_seed(0)
    flow3d = Flow3DEncoder().eval()  # 16 time steps: 16 -> 8 (max pool) -> 4 -> 2 -> 1
    assert flow3d(torch.rand(1, 2, 16, 16, 16)).shape == (1, 512) and flow3d.backbone[0].kernel_size == (7, 7, 7)
    assert not hasattr(flow3d, "trunk")  # mid-level fusion steps through 2-D trunks only
    flow2d = Flow2DEncoder().eval()
    flow = torch.rand(2, 2, 3, 16, 16)
    assert flow2d(flow).shape == (2, 512) and flow2d.trunk[0].in_channels == 2
    assert flow2d.pool(flow2d.trunk(flow2d.fold(flow)), 2).allclose(flow2d(flow))


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    return path


def test_imagenet_init_rules(imagenet_file):
    state = torch.load(imagenet_file)
    rgb = VisualEncoder()
    load_imagenet_resnet18(rgb, imagenet_file)
    assert rgb.trunk[0].weight.equal(state["conv1.weight"]) and rgb.trunk[7][1].bn2.bias.equal(state["layer4.1.bn2.bias"])
    flow2d = Flow2DEncoder()
    report = load_imagenet_resnet18(flow2d, imagenet_file)
    grey = state["conv1.weight"].mean(dim=1, keepdim=True)
    assert flow2d.trunk[0].weight.allclose(grey.repeat(1, 2, 1, 1)) and "averaged over colour" in report
    assert flow2d.trunk[5][0].downsample[0].weight.equal(state["layer2.0.downsample.0.weight"])
    flow3d = Flow3DEncoder()
    report = load_imagenet_resnet18(flow3d, imagenet_file)
    assert flow3d.backbone[0].weight.allclose(grey.repeat(1, 2, 1, 1).unsqueeze(2).repeat(1, 1, 7, 1, 1) / 7)
    block = flow3d.backbone[6][0]  # layer3.0: 3x3x3 convolutions and a 1x1x1 downsample
    assert block.conv1.weight.sum(dim=2).allclose(state["layer3.0.conv1.weight"], atol=1e-6)
    assert block.downsample[0].weight[:, :, 0].equal(state["layer3.0.downsample.0.weight"])
    assert block.bn1.running_var.equal(state["layer3.0.bn1.running_var"]) and "inflated over time" in report
    for conv1 in (flow2d.trunk[0], flow3d.backbone[0]):  # a file's RGB conv1 differs from what they hold now
        with torch.no_grad():
            conv1.weight.normal_()
    for encoder, conv1 in ((flow2d, flow2d.trunk[0]), (flow3d, flow3d.backbone[0])):
        before = conv1.weight.clone()
        assert "conv1 left as built" in load_imagenet_resnet18(encoder, imagenet_file, first_layer="random")
        assert conv1.weight.equal(before)


def test_init_from_a_checkpoint_of_ours_and_bad_files(imagenet_file, tmp_path):
    torch.manual_seed(1)
    trained_rgb, trained_flow = VisualEncoder(), Flow2DEncoder()
    model = {**{f"encoders.rgb.{k}": v for k, v in trained_rgb.state_dict().items()},
             **{f"encoders.flow.{k}": v for k, v in trained_flow.state_dict().items()}}
    torch.save({"model": model, "model_config": {}}, tmp_path / "best.pt")
    flow = Flow2DEncoder()
    load_imagenet_resnet18(flow, tmp_path / "best.pt", prefix="encoders.flow.")
    assert flow.trunk[0].weight.equal(trained_flow.trunk[0].weight)
    rgb = VisualEncoder()
    load_imagenet_resnet18(rgb, tmp_path / "best.pt")  # no prefix: the file's only RGB trunk
    assert rgb.trunk[4][0].conv1.weight.equal(trained_rgb.trunk[4][0].conv1.weight)

    with pytest.raises(DataError, match="pretrained weights not found: .*nothing is downloaded"):
        load_imagenet_resnet18(rgb, tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read pretrained weights .*junk.pth"):
        load_imagenet_resnet18(rgb, tmp_path / "junk.pth")
    state = torch.load(imagenet_file)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 32, 3, 3)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(DataError, match=r"layer1.0.conv1.weight holds shape \(64, 32, 3, 3\) but the Flow3DEncoder "
                                        r"expects \(64, 64, 3, 3, 3\)"):
        load_imagenet_resnet18(Flow3DEncoder(), tmp_path / "odd.pth")
    del state["layer1.0.conv1.weight"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(DataError, match="lacks 1 of the VisualEncoder's layers"):
        load_imagenet_resnet18(VisualEncoder(), tmp_path / "short.pth")


# ---- preparation from videos
def write_avi(path, frames=30, size=(32, 24), shift=1):
    """An MJPG avi at 25 fps of a smooth texture moving right by `shift` px a frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (size[1], size[0] + frames * shift, 3),
                                                                 dtype=np.uint8), (5, 5), 0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    for i in range(frames):
        start = (frames - i) * shift  # the window moves left over the texture: the content moves right
        writer.write(np.ascontiguousarray(texture[:, start:start + size[0]]))
    writer.release()


def test_prepare_ucf101_end_to_end_with_resume_and_a_broken_video(tmp_path, capsys):
    videos, out = tmp_path / "UCF-101", tmp_path / "UCF101"
    write_avi(videos / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi", frames=30)
    write_avi(videos / "HandstandPushups" / "v_HandStandPushups_g09_c01.avi", frames=55)
    (videos / "HandstandPushups" / "v_HandStandPushups_g10_c01.avi").write_bytes(b"not a video")
    assert prepare_ucf101.main(["--video_root", str(videos), "--out", str(out), "--workers", "2"]) == 1
    rgb = sorted(p.name for p in (out / "rgb" / "v_HandStandPushups_g09_c01").iterdir())
    assert rgb == ["frame_00001.jpg", "frame_00002.jpg", "frame_00003.jpg"]  # 2.2 s at 1 fps
    u_dir = out / "flow" / "u" / "v_ApplyEyeMakeup_g01_c01"
    assert sorted(p.name for p in u_dir.iterdir()) == [f"frame{t:06d}.jpg" for t in range(1, 30)]
    u = cv2.imread(str(u_dir / "frame000010.jpg"), cv2.IMREAD_GRAYSCALE)[6:18, 8:24].mean()
    v = cv2.imread(str(out / "flow" / "v" / "v_ApplyEyeMakeup_g01_c01" / "frame000010.jpg"),
                   cv2.IMREAD_GRAYSCALE)[6:18, 8:24].mean()
    assert 130 < u < 138 and 124 < v < 131  # +1 px right = 255 * 21 / 40 = 134; no vertical motion = 127.5
    failed = (out / "failed.txt").read_text()
    assert "v_HandStandPushups_g10_c01.avi" in failed and not (out / "rgb" / "v_HandStandPushups_g10_c01").exists()
    assert "1 video(s) failed" in capsys.readouterr().out

    assert prepare_ucf101.main(["--video_root", str(videos), "--out", str(out)]) == 1
    assert "3 videos, 2 already done" in capsys.readouterr().out
    data = load_ucf101_split(out, 1)  # the prepared tree, read back
    assert data.classes == ["ApplyEyeMakeup", "HandstandPushups"]
    assert data.train == [("v_HandStandPushups_g09_c01", 1)] and data.test == [("v_ApplyEyeMakeup_g01_c01", 0)]
    rgb, flow, label = UCF101Dataset(out, data.train, train=True, image_size=16)[(0, 3)]
    assert rgb.shape == (3, 3, 16, 16) and flow.shape == (2, 16, 16, 16) and label == 1

    assert prepare_ucf101.main(["--video_root", str(videos), "--out", str(out), "--fps", "2"]) == 2
    assert "prepared with" in capsys.readouterr().err


def test_prepare_without_contrib_opencv_says_which_package(tmp_path, monkeypatch, capsys):
    import dataset.ucf101_prepare as preparation
    monkeypatch.setattr(preparation, "_tvl1", None)
    monkeypatch.delattr(cv2, "optflow")
    assert prepare_ucf101.main(["--video_root", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cv2.optflow is missing" in err and "opencv-contrib-python-headless" in err


# ---- the demo tree
def test_demo_tree_reads_with_and_without_the_lists(tmp_path):
    listed = load_ucf101_split(write_ucf101_demo(tmp_path / "with", clips_per_class=3, image_size=16, flow_frames=17), 1)
    named = load_ucf101_split(write_ucf101_demo(tmp_path / "without", clips_per_class=3, image_size=16, flow_frames=17,
                                                lists=False), 1)
    assert listed.classes == named.classes == UCF_DEMO_CLASSES and "official split 1" in listed.source
    assert sorted(listed.train) == sorted(named.train) and sorted(listed.test) == sorted(named.test)
    assert listed.test and ("v_HandStandPushups_g01_c01", 3) in listed.test
    for recipe, frames in (("release", 16), ("balancebenchmark", 3)):
        data = UCF101Dataset(tmp_path / "with", listed.train, train=True, recipe=recipe, image_size=16)
        rgb, flow, label = data[(len(data) - 1, 0)]
        assert rgb.shape == (3, 3, 16, 16) and flow.shape == (2, frames, 16, 16) and label == 5
        assert len(data.readable_files()) > len(data) and data.evaluation_view()[0][1].shape == (2, frames, 16, 16)


def test_main_ucf_flags_data_and_encoders(tmp_path, imagenet_file):
    import main_UCF
    root = write_ucf101_demo(tmp_path / "UCF101", clips_per_class=2, image_size=16, flow_frames=4)
    args = main_UCF.build_parser().parse_args(["--train", "--data_root", str(root), "--recipe", "balancebenchmark",
                                               "--flow_pretrain", str(imagenet_file), "--flow_first_layer", "random"])
    assert (args.epochs, args.batch_size, args.lr_decay_step, args.learning_rate) == (200, 32, 100, 1e-3)
    assert args.rgb_pretrain is None and hasattr(args, "inforeg_beta_rgb")  # per-modality flags are named so
    data = main_UCF.build_datasets(args, with_train=True)
    assert (len(data.train), len(data.test), data.classes) == (6, 6, UCF_DEMO_CLASSES)
    encoders = main_UCF.build_encoders(args)
    assert isinstance(encoders["flow"], Flow2DEncoder)
    args.recipe = "release"
    assert isinstance(main_UCF.build_encoders(args)["flow"], Flow3DEncoder)
