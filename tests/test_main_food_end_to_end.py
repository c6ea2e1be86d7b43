"""main_Food.py end to end on the demo tree in the UPMC-Food101 layout with the demo's tiny local BERT: concat fusion
of image (ResNet18, 512-d) and text (BERT + projection, 1024-d) features under MMCosine, best.pt chosen on a
validation set held out of train and evaluated again to the logged numbers, with BERT fine-tuned and frozen."""
import json
import math

import pytest
import torch
from safetensors.torch import load_file

import main_Food
from dataset.demo_food101 import write_food101_demo

TINY = ["--image_size", "16", "--batch_size", "6", "--no_progress", "--learning_rate", "0.01", "--text_length", "12"]


@pytest.fixture(scope="module")
def food_root(tmp_path_factory):
    return write_food101_demo(tmp_path_factory.mktemp("food") / "Food101", clips_per_class=4, seed=0, image_size=20)


def rows_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_concat_mmcosine_trains_and_best_evaluates_to_the_logged_numbers(food_root, tmp_path):
    run = tmp_path / "run"
    main_Food.main(["--train", "--data_root", str(food_root), "--text_model", str(food_root / "text_model"),
                    "--run_dir", str(run), "--epochs", "2", "--fusion_method", "concat", "--mmcosine", "True",
                    "--val_split", "0.34", *TINY])
    rows = rows_of(run)
    for key in ("acc_image", "acc_text", "gt_logit_text", "shapley_image", "shapley_text", "acc_keep_none"):
        assert math.isfinite(rows[-1][f"test_{key}"]), key
    assert math.isfinite(rows[-1]["val_acc"]) and math.isfinite(rows[-1]["weight_norm_text"])
    best = torch.load(run / "best.pt", weights_only=True)
    assert best["model_config"]["scaling"] == 15.0  # BalanceBenchmark's MMCosine scale, the dataset's default
    assert best["model"]["fusion.fc_out.weight"].shape == (6, 512 + 1024)  # image 512 + text 1024, concatenated
    epoch = best["best"]["epoch"]
    logged = rows[epoch - 1]
    assert best["best"]["split"] == "val" and best["best"]["test_acc"] == pytest.approx(logged["test_acc"])
    initial = load_file(food_root / "text_model" / "model.safetensors")["encoder.layer.0.attention.self.query.weight"]
    assert not torch.equal(best["model"]["encoders.text.bert.encoder.layer.0.attention.self.query.weight"], initial)
    stats = main_Food.main(["--ckpt_path", str(run / "best.pt"), "--data_root", str(food_root), "--no_progress"])
    for key in ("acc", "acc_image", "acc_text", "loss"):
        assert stats[key] == pytest.approx(logged[f"test_{key}"]), key


def test_frozen_text_keeps_berts_weights_and_trains_the_rest(food_root, tmp_path):
    run = tmp_path / "run"
    main_Food.main(["--train", "--data_root", str(food_root), "--text_model", str(food_root / "text_model"),
                    "--run_dir", str(run), "--epochs", "1", "--text_frozen", "True", "--text_dim", "32", *TINY])
    state = torch.load(run / "last.pt", weights_only=True)["model"]
    initial = load_file(food_root / "text_model" / "model.safetensors")
    for name, value in initial.items():
        assert torch.equal(state[f"encoders.text.bert.{name}"], value), name
    assert state["fusion.fc_out.weight"].shape == (6, 512 + 32)
    assert math.isfinite(rows_of(run)[-1]["test_acc"])
