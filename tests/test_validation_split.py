"""--val_split: a validation set out of the train split picks best.pt, never the test set."""
import json

import pytest
import torch

import main_CD
from conftest import TINY_FLAGS
from dataset import DataError
from dataset.splits import read_split
from dataset.validation import hold_out_validation

CLASSES = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
TRAIN = [(f"c{i:02d}", i % 3) for i in range(30)]
TEST = [("t0", 0), ("t1", 1)]


def test_a_fraction_is_stratified_disjoint_and_fixed_by_the_seed(tmp_path):
    rest, val, note = hold_out_validation(TRAIN, TEST, "0.2", seed=4, classes=CLASSES, base=tmp_path)
    assert sorted(l for _, l in val) == [0, 0, 1, 1, 2, 2] and len(rest) == 24
    assert sorted(rest + val) == sorted(TRAIN) and not set(rest) & set(val)
    assert hold_out_validation(TRAIN, TEST, "0.2", 4, CLASSES, tmp_path)[1] == val
    assert hold_out_validation(TRAIN, TEST, "0.2", 5, CLASSES, tmp_path)[1] != val
    assert "6 clips held out of the 30 train clips" in note


def test_a_csv_names_clips_of_the_train_split(tmp_path):
    (tmp_path / "val.csv").write_text("clip,label\nc01,HAP\nc05\n")
    rest, val, _ = hold_out_validation(TRAIN, TEST, "val.csv", 0, CLASSES, tmp_path)
    assert val == [("c01", 1), ("c05", 2)] and len(rest) == 28 and ("c01", 1) not in rest


@pytest.mark.parametrize("rows,message", [("t0\n", "is in the test split"), ("zz\n", "is not in the train split"),
                                          ("c01,NEU\n", "labelled 'NEU' but the train split says 'HAP'"),
                                          ("\n", "lists no clips")])
def test_a_bad_validation_csv_names_the_row(tmp_path, rows, message):
    (tmp_path / "val.csv").write_text(rows)
    with pytest.raises(DataError, match=message):
        hold_out_validation(TRAIN, TEST, "val.csv", 0, CLASSES, tmp_path)


@pytest.mark.parametrize("spec", ["0", "1", "1.5", "-0.1"])
def test_a_fraction_outside_0_1_is_refused(tmp_path, spec):
    with pytest.raises(DataError, match="strictly between 0 and 1"):
        hold_out_validation(TRAIN, TEST, spec, 0, CLASSES, tmp_path)


@pytest.fixture(scope="module")
def val_run(demo_root, tmp_path_factory):
    """G-Blending with a validation set: best.pt by validation, and G-Blending measures on it."""
    run = tmp_path_factory.mktemp("val") / "run"
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(run), "--epochs", "3",
                  "--val_split", "0.34", "--method", "gblending", "--gb_every", "1", *TINY_FLAGS])
    return run


def test_best_checkpoint_is_the_best_validation_epoch(val_run, demo_root):
    rows = [json.loads(line) for line in (val_run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        assert row["val_count"] == 6 and row["test_count"] == 6 and "val_acc_a" in row
    chosen = max(rows, key=lambda r: r["val_acc"])  # the first epoch of the best validation accuracy
    last = rows[-1]
    assert (last["best_epoch"], last["best_split"]) == (chosen["epoch"], "val")
    assert last["best_acc"] == chosen["val_acc"] and last["best_test_acc"] == chosen["test_acc"]
    best = torch.load(val_run / "best.pt", weights_only=True)
    assert best["epoch"] == chosen["epoch"]
    stats = main_CD.main(["--ckpt_path", str(val_run / "best.pt"), "--data_root", str(demo_root), *TINY_FLAGS])
    assert stats["acc"] == pytest.approx(chosen["test_acc"])  # the test number of that epoch


def test_validation_clips_leave_training_and_the_run_keeps_the_lists(val_run, demo_root):
    rows = [json.loads(line) for line in (val_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["train_count"] == 12  # 18 - 6 validation clips; G-Blending held out nothing more
    # G-Blending's last measurement (start of epoch 3) is the validation loss logged after epoch 2.
    previous = torch.load(val_run / "last.pt", weights_only=True)["method"]["previous"]
    for head in ("", "_a", "_v"):
        assert previous[head][1] == pytest.approx(rows[1][f"val_loss{head}"], rel=1e-6)
    train, val = read_split(val_run / "train.csv", CLASSES), read_split(val_run / "val.csv", CLASSES)
    assert sorted(train + val) == sorted(read_split(demo_root / "train.csv", CLASSES))
    assert read_split(val_run / "test.csv", CLASSES) == read_split(demo_root / "test.csv", CLASSES)


def test_main_vox_refuses_val_split_in_one_line(capsys):
    import main_Vox
    with pytest.raises(SystemExit) as exit_info:
        main_Vox.main(["--train", "--val_split", "0.1"])
    assert exit_info.value.code == 2 and "first of --trial_lists" in capsys.readouterr().err
