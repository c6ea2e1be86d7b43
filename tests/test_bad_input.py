"""Each bad input gives one clear line naming the file or flag, a non-zero exit, no traceback."""
import shutil
import subprocess
import sys

import pytest

import main_CD
from conftest import ROOT, TINY_FLAGS


def run_cd(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code != 0
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith(("error:", "usage:") if "usage" in err else "error:"), err
    return err


@pytest.fixture
def tree(tmp_path, demo_root):
    root = tmp_path / "CREMA-D"
    shutil.copytree(demo_root, root)
    return root


def train_flags(root, tmp_path, *extra):
    return ["--train", "--data_root", str(root), "--run_dir", str(tmp_path / "run"), "--epochs", "1",
            *TINY_FLAGS, *extra]


def first_train_clip(root):
    return (root / "train.csv").read_text().splitlines()[0].split(",")[0]


def test_missing_data_root(tmp_path, capsys):
    err = run_cd(train_flags(tmp_path / "nowhere", tmp_path), capsys)
    assert "nowhere" in err and "--data_root" in err


def test_missing_wav_is_reported_with_count_and_names(tree, tmp_path, capsys):
    clip = first_train_clip(tree)
    (tree / "AudioWAV" / f"{clip}.wav").unlink()
    err = run_cd(train_flags(tree, tmp_path), capsys)
    assert "1 clip(s)" in err and clip in err and "--skip_missing" in err


def test_skip_missing_skips_and_says_how_many(tree, tmp_path, capsys):
    clip = first_train_clip(tree)
    shutil.rmtree(tree / "Image-01-FPS" / clip)
    main_CD.main(train_flags(tree, tmp_path, "--skip_missing", "yes"))
    out = capsys.readouterr().out
    assert "skipped 1 train clip(s)" in out
    assert "17 train" in out


def test_corrupt_wav_names_the_file(tree, tmp_path, capsys):
    clip = first_train_clip(tree)
    (tree / "AudioWAV" / f"{clip}.wav").write_bytes(b"not a wav at all")
    err = run_cd(train_flags(tree, tmp_path), capsys)
    assert f"{clip}.wav" in err


def test_corrupt_jpg_names_the_file(tree, tmp_path, capsys):
    clip = first_train_clip(tree)
    for jpg in (tree / "Image-01-FPS" / clip).iterdir():
        jpg.write_bytes(b"\xff\xd8 truncated")
    err = run_cd(train_flags(tree, tmp_path), capsys)
    assert clip in err and "jpg" in err


def test_corrupt_input_inside_a_worker_is_one_line_too(tree, tmp_path, capsys):
    clip = first_train_clip(tree)
    (tree / "AudioWAV" / f"{clip}.wav").write_bytes(b"garbage")
    err = run_cd(train_flags(tree, tmp_path, "--num_workers", "1"), capsys)
    assert f"{clip}.wav" in err


def test_label_not_in_class_list(tree, tmp_path, capsys):
    with open(tree / "train.csv", "a") as fh:
        fh.write("1001_DFA_ANG_XX,CALM\n")
    err = run_cd(train_flags(tree, tmp_path), capsys)
    assert "CALM" in err and "train.csv" in err


def test_empty_split(tree, tmp_path, capsys):
    (tree / "test.csv").write_text("")
    err = run_cd(train_flags(tree, tmp_path), capsys)
    assert "test.csv" in err and "no clips" in err


def test_unknown_fusion(tree, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_CD.main(train_flags(tree, tmp_path, "--fusion_method", "attention"))
    assert exit_info.value.code == 2
    assert "invalid choice: 'attention'" in capsys.readouterr().err


def test_bad_boolean(tree, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main_CD.main(train_flags(tree, tmp_path, "--mmcosine", "maybe"))
    assert "expected True/False" in capsys.readouterr().err


def test_checkpoint_with_other_fusion_or_class_count(tree, tmp_path, capsys):
    main_CD.main(train_flags(tree, tmp_path, "--fusion_method", "sum"))
    ckpt = str(tmp_path / "run" / "best.pt")
    err = run_cd(["--ckpt_path", ckpt, "--data_root", str(tree), "--fusion_method", "film", *TINY_FLAGS], capsys)
    assert "fusion='sum'" in err and "--fusion_method" in err
    (tree / "stat.csv").write_text("NEU\nHAP\nSAD\nFEA\nDIS\nANG\nCALM\n")
    err = run_cd(["--ckpt_path", ckpt, "--data_root", str(tree), *TINY_FLAGS], capsys)
    assert "n_classes=6" in err and "7" in err


def test_missing_and_damaged_checkpoint(tree, tmp_path, capsys):
    err = run_cd(["--ckpt_path", str(tmp_path / "none.pt"), "--data_root", str(tree)], capsys)
    assert "none.pt" in err
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    err = run_cd(["--ckpt_path", str(tmp_path / "bad.pt"), "--data_root", str(tree)], capsys)
    assert "bad.pt" in err


def test_script_exit_code_and_single_line_from_the_shell(tmp_path):
    proc = subprocess.run([sys.executable, "main_CD.py", "--train", "--data_root", str(tmp_path / "missing")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: data root not found")


def test_a_reordered_class_list_is_refused_for_evaluation_and_resume(tree, tmp_path, capsys):
    main_CD.main(train_flags(tree, tmp_path))
    (tree / "stat.csv").write_text("HAP\nNEU\nSAD\nFEA\nDIS\nANG\n")  # same names, two swapped
    err = run_cd(["--ckpt_path", str(tmp_path / "run" / "best.pt"), "--data_root", str(tree), *TINY_FLAGS], capsys)
    assert "in this order" in err and "position 0" in err
    before = (tmp_path / "run" / "args.json").read_bytes()
    err = run_cd(["--resume", str(tmp_path / "run"), "--epochs", "2"], capsys)
    assert "in this order" in err and (tmp_path / "run" / "args.json").read_bytes() == before


def test_a_refused_resume_leaves_the_run_as_it_was(tree, tmp_path, capsys):
    main_CD.main(train_flags(tree, tmp_path))
    run = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    err = run_cd(["--resume", str(run), "--fusion_method", "gated", "--epochs", "2"], capsys)
    assert "fusion='concat'" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # args.json untouched
    main_CD.main(["--resume", str(run), "--epochs", "2", "--no_progress"])  # and a plain resume still works
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_every_corrupt_or_empty_file_is_named_before_training(tree, tmp_path, capsys):
    train_clip = first_train_clip(tree)
    test_clip = (tree / "test.csv").read_text().splitlines()[-1].split(",")[0]
    (tree / "AudioWAV" / f"{train_clip}.wav").write_bytes(b"")                 # empty wav, train split
    frame = sorted((tree / "Image-01-FPS" / test_clip).iterdir())[1]           # the middle frame is the one read
    frame.write_bytes(b"\xff\xd8 truncated")                                   # corrupt jpg, test split
    err = run_cd(train_flags(tree, tmp_path), capsys)
    assert "2 unreadable file(s)" in err and f"{train_clip}.wav" in err and str(frame) in err
    assert not (tmp_path / "run").exists()  # found before anything was written, let alone trained


def test_a_utf16_split_with_its_bom_is_read_as_its_utf8_twin(tree):
    from dataset.splits import read_class_list, read_split
    classes = read_class_list(tree / "stat.csv")
    text = (tree / "train.csv").read_text(encoding="utf-8")
    for encoding in ("utf-16", "utf-16-be"):  # "utf-16" writes a little-endian BOM; the BE one gets it by hand
        data = text.encode(encoding)
        (tree / "wide.csv").write_bytes(data if encoding == "utf-16" else b"\xfe\xff" + data)
        assert read_split(tree / "wide.csv", classes) == read_split(tree / "train.csv", classes)


@pytest.mark.parametrize("encoding,message", [("latin-1", "is not UTF-8 text (a byte at offset"),
                                              ("utf-16-le", "holds NUL bytes: UTF-16")])
def test_a_split_in_another_encoding_is_one_line_naming_it(tree, tmp_path, capsys, encoding, message):
    (tree / "train.csv").write_bytes(("1001_DFA_ANG_XX,ANG\nÉtude_1,ANG\n").encode(encoding))
    err = run_cd(train_flags(tree, tmp_path), capsys)
    assert "train.csv" in err and message in err and "save it as UTF-8" in err
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_every_list_reader_takes_utf16_with_a_bom(tmp_path):
    from dataset.ave import read_event_rows
    from dataset.vggsound import read_vggsound_csv
    lists = {read_event_rows: "Church bell&c---zaDCTaE&good&0&10\nBark&vid00000001&good&2&5\n",
             read_vggsound_csv: "a_b-c_d_e_f,30,dog barking,train\nqwertyuiopa,7,dog barking,test\n"}
    for reader, text in lists.items():
        (tmp_path / "plain.txt").write_text(text, encoding="utf-8")
        (tmp_path / "wide.txt").write_text(text, encoding="utf-16")
        assert reader(tmp_path / "wide.txt") == reader(tmp_path / "plain.txt")


@pytest.mark.parametrize("flag,target", [("--resume", ""), ("--ckpt_path", "best.pt")])
def test_another_entry_scripts_run_is_refused_naming_the_right_one(trained_run, tmp_path, capsys, flag, target):
    import main_KS
    before = {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir()}
    with pytest.raises(SystemExit) as exit_info:
        main_KS.main([flag, str(trained_run / target) if target else str(trained_run), "--data_root", str(tmp_path)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_info.value.code == 2 and len(err) == 1, err
    assert "was made by main_CD.py (cremad), not main_KS.py: evaluate or resume it with main_CD.py" in err[0]
    assert {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir()} == before


def test_a_test_clip_in_the_train_list_is_refused_or_kept_with_a_note(tree, tmp_path, capsys):
    test_clip = (tree / "test.csv").read_text().splitlines()[0]
    with open(tree / "train.csv", "a") as fh:
        fh.write(test_clip + "\n")
    err = run_cd(train_flags(tree, tmp_path), capsys)
    assert f"1 clip(s) are in both the train and the test list (first: {test_clip.split(',')[0]})" in err
    assert "--allow_overlap True" in err and not (tmp_path / "run").exists()
    main_CD.main(train_flags(tree, tmp_path, "--allow_overlap", "True"))
    assert "note: 1 clip(s) are in both the train and the test list" in capsys.readouterr().out


def test_a_repeated_row_is_refused_in_every_list(tree, tmp_path, capsys):
    clip = first_train_clip(tree)
    (tree / "val.csv").write_text(f"{clip}\n{clip}\n")
    err = run_cd(train_flags(tree, tmp_path, "--val_split", "val.csv"), capsys)
    assert f"1 clip(s) are listed more than once in the validation list (first: {clip})" in err
    with open(tree / "train.csv", "a") as fh:
        fh.write((tree / "train.csv").read_text().splitlines()[0] + "\n")
    err = run_cd(train_flags(tree, tmp_path, "--val_split", "0.2"), capsys)
    assert f"1 clip(s) are listed more than once in the train list (first: {clip})" in err
    assert "--allow_duplicates True" in err and not (tmp_path / "run").exists()


def test_aves_own_lists_share_videos_between_splits_so_its_script_keeps_them_with_a_note():
    import main_AVE
    from utils.datasets import check_lists
    assert main_AVE.build_parser().parse_args([]).allow_overlap is True
    assert main_CD.build_parser().parse_args([]).allow_overlap is False
    notes = check_lists({"train": [("a", 0), ("b", 1)], "validation": [("c", 0)], "test": [("b", 1)]}, True, False)
    assert notes == ["note: 1 clip(s) are in both the train and the test list (first: b); kept, as --allow_overlap "
                     "True asks"]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_fp16_on_a_cpu_is_refused_in_one_line(tree, tmp_path, capsys):
    err = run_cd(train_flags(tree, tmp_path, "--amp", "fp16"), capsys)
    assert "--amp fp16 on a CPU" in err and "--amp bf16" in err and not (tmp_path / "run").exists()


def test_the_file_check_counts_files_and_the_split_line_promises_nothing(tree, tmp_path, capsys):
    clip = first_train_clip(tree)
    (tree / "AudioWAV" / f"{clip}.wav").write_bytes(b"")
    err = run_cd(train_flags(tree, tmp_path), capsys)
    assert "of the listed clips' wavs and frames" in err
    assert "(kept in the run directory)" not in capsys.readouterr().out and not (tmp_path / "run").exists()
