"""Every fast path gives the plain path's results: the decode-once cache, AMP, channels-last."""
import json
import os
import shutil
from types import SimpleNamespace

import pytest
import torch

import main_CD
from conftest import TINY_FLAGS
from dataset import CremadDataset, load_splits, resolve_class_list, resolve_frames_dir
from dataset.cache import FeatureCache
from dataset.modalities import AUDIO_VISUAL
from helpers.tiny_models import resnet_classifier as AVClassifier
from utils.caching import attach_caches
from utils.engine import to_device
from utils.precision import Precision


def open_train_split(root, audio_seconds=0.5, num_frames=2, **kw):
    classes = resolve_class_list(root, None)
    train, test, _ = load_splits(root, classes, None, None)
    return CremadDataset(root, train, frames_dir=resolve_frames_dir(root, None), train=True, image_size=24,
                         num_frames=num_frames, audio_seconds=audio_seconds, **kw)


def cache_args(tmp_path, size=None):
    return SimpleNamespace(cache_dir=str(tmp_path / "cache"), cache_frame_size=size, num_workers=0)


def test_cached_items_equal_decoded_items(tmp_path, demo_root):
    plain, cached = open_train_split(demo_root), open_train_split(demo_root)
    attach_caches(SimpleNamespace(train=cached, test=None), cache_args(tmp_path), "t", False)
    assert isinstance(cached.cache, FeatureCache)
    for key in [(0, 7), (5, 8), (len(plain) - 1, 9)]:
        (a1, v1, y1), (a2, v2, y2) = plain[key], cached[key]
        assert y1 == y2 and a2.dtype == torch.float32 and v2.dtype == torch.uint8
        assert torch.equal(a1, a2) and torch.equal(v1, v2)  # exactly what the plain path decodes


def test_cached_items_equal_decoded_items_when_frames_are_picked_per_item(tmp_path, demo_root):
    """--frame_pick segments keeps every frame of a training clip (clips differ in length) and picks in
    __getitem__: the cache stores them all, and gives the same training items and evaluation view."""
    root = tmp_path / "tree"
    shutil.copytree(demo_root, root)
    frames_root = resolve_frames_dir(root, None)
    clips = sorted(p for p in frames_root.iterdir() if p.is_dir())
    for extra, clip in enumerate(clips[:4]):  # 3 frames each, then 3 + 2 + k: 5 to 8 frames
        for k in range(2 + extra):
            shutil.copy(clip / "00001.jpg", clip / f"{10 + k:05d}.jpg")

    def split():
        return open_train_split(root, num_frames=2, frame_pick="segments", frame_augment="frame")
    plain, cached = split(), split()
    counts = [plain.decode(i)[1].shape[0] for i in range(len(plain))]
    assert len(set(counts)) > 1 and sum(counts) > 3 * len(counts)
    attach_caches(SimpleNamespace(train=cached, test=None), cache_args(tmp_path), "t", False)
    for index in range(len(plain)):
        assert cached.cache.get(index)[1].shape[0] == counts[index]
    for key in [(0, 7), (1, 8), (3, 9), (len(plain) - 1, 10)]:
        (a1, v1, y1), (a2, v2, y2) = plain[key], cached[key]
        assert y1 == y2 and torch.equal(a1, a2) and torch.equal(v1, v2)
    assert all(torch.equal(plain.evaluation_view()[i][1], cached.evaluation_view()[i][1]) for i in range(4))


def test_cache_downscales_large_frames_once(tmp_path, demo_root):
    ds = open_train_split(demo_root)
    attach_caches(SimpleNamespace(train=ds, test=None), cache_args(tmp_path, size=20), "t", False)
    assert ds.cache.meta["frame_short_side"] == 20 and not ds.cache.meta["exact"]
    assert ds.cache.get(0)[1].shape == (2, 3, 20, 20) and ds.cache.get(0)[0].dtype == torch.float16


def test_cache_is_rebuilt_when_inputs_or_parameters_change(tmp_path, demo_root):
    root = tmp_path / "tree"
    shutil.copytree(demo_root, root)
    args = cache_args(tmp_path)

    def folder(**kw):
        ds = open_train_split(root, **kw)
        attach_caches(SimpleNamespace(train=ds, test=None), args, "t", False)
        return ds.cache.folder

    first = folder()
    assert folder() == first  # reused
    assert folder(audio_seconds=0.6) != first
    wav = root / "AudioWAV" / f"{open_train_split(root).items[0][0]}.wav"
    os.utime(wav, ns=(1, 1))
    assert folder() != first
    assert not list((tmp_path / "cache").glob(".*partial*"))


def test_training_from_the_cache_and_evaluating_with_and_without_it(tmp_path, demo_root):
    run, cache = tmp_path / "run", tmp_path / "cache"
    main_CD.main(["--train", "--data_root", str(demo_root), "--epochs", "1", "--mmcosine", "True", *TINY_FLAGS,
                  "--run_dir", str(run), "--cache_dir", str(cache)])
    assert len([p for p in cache.iterdir() if (p / "meta.json").is_file()]) == 2  # train and test splits
    logged = json.loads((run / "metrics.jsonl").read_text())
    # The same run again, now reusing the cache: building it must not have changed anything.
    main_CD.main(["--train", "--data_root", str(demo_root), "--epochs", "1", "--mmcosine", "True", *TINY_FLAGS,
                  "--run_dir", str(tmp_path / "again"), "--cache_dir", str(cache)])
    again = json.loads((tmp_path / "again" / "metrics.jsonl").read_text())
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "weight_norm_a"):
        assert again[key] == logged[key], key
    evaluate = ["--ckpt_path", str(run / "best.pt"), "--data_root", str(demo_root), *TINY_FLAGS]
    from_cache = main_CD.main([*evaluate, "--cache_dir", str(cache)])
    decoded = main_CD.main(evaluate)
    assert from_cache["acc"] == pytest.approx(logged["test_acc"])
    assert decoded["loss"] == from_cache["loss"] and decoded["acc"] == from_cache["acc"]  # an exact cache


@pytest.mark.parametrize("mmcosine", [False, True])
def test_bf16_autocast_stays_close_to_fp32(mmcosine):
    torch.manual_seed(0)
    model = AVClassifier(6, "gated", mmcosine=mmcosine).eval()
    x = {"audio": torch.randn(2, 1, 64, 48), "visual": torch.randn(2, 3, 1, 32, 32)}
    with torch.no_grad():
        ref = model(x)
        with Precision("bf16", torch.device("cpu")).autocast():
            low = model(x)
    assert low.logits.dtype == torch.float32 if mmcosine else low.logits.dtype == torch.bfloat16
    scale = ref.logits.abs().max()
    assert (low.logits.float() - ref.logits).abs().max() <= 0.05 * scale
    assert (low.logits.float().argmax(1) == ref.logits.argmax(1)).all()


def test_fp16_steps_use_a_grad_scaler_and_update_weights():
    torch.manual_seed(0)
    model = AVClassifier(3, "concat", mmcosine=True)
    precision = Precision("fp16", torch.device("cpu"))
    assert precision.scaler.is_enabled()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.fusion.fc_out.weight.detach().clone()
    x, labels = {"audio": torch.randn(2, 1, 64, 48), "visual": torch.randn(2, 3, 1, 32, 32)}, torch.tensor([0, 1])
    for _ in range(20):  # steps whose fp16 gradients overflow are skipped while the scale comes down
        with precision.autocast():
            out = model(x)
        precision.backward_step(torch.nn.functional.cross_entropy(out.logits.float(), labels), opt)
        if not torch.equal(before, model.fusion.fc_out.weight):
            break
    assert not torch.equal(before, model.fusion.fc_out.weight)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    model = AVClassifier(6, "film", mmcosine=True).eval()
    batch = (torch.randn(2, 1, 64, 48), torch.randint(0, 255, (2, 3, 2, 32, 32), dtype=torch.uint8), torch.tensor([0, 1]))
    device = torch.device("cpu")
    with torch.no_grad():
        ref = model(to_device(batch, AUDIO_VISUAL, device)[0])
        model.to(memory_format=torch.channels_last)
        fast = model(to_device(batch, AUDIO_VISUAL, device, channels_last=True)[0])
    assert torch.allclose(ref.logits, fast.logits, atol=1e-4)


def test_a_seeded_run_gives_the_same_numbers_with_and_without_the_cache(tmp_path, demo_root, capsys):
    flags = ["--train", "--data_root", str(demo_root), "--epochs", "2", *TINY_FLAGS]
    main_CD.main([*flags, "--run_dir", str(tmp_path / "plain")])
    main_CD.main([*flags, "--run_dir", str(tmp_path / "cached"), "--cache_dir", str(tmp_path / "cache")])
    rows = {name: [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("plain", "cached")}
    for plain, cached in zip(rows["plain"], rows["cached"]):
        assert {k: v for k, v in plain.items() if not k.endswith("seconds")} == \
            {k: v for k, v in cached.items() if not k.endswith("seconds")}
    capsys.readouterr()
    main_CD.main([*flags, "--run_dir", str(tmp_path / "lossy"), "--cache_dir", str(tmp_path / "cache"),
                  "--cache_frame_size", "16"])
    assert "note: --cache_frame_size 16: the cache keeps frames downscaled" in capsys.readouterr().out
