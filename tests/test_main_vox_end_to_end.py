"""main_Vox.py end to end on the VoxCeleb-layout demo: speaker batches, trial-list verification
(EER / minDCF per list and per modality), best.pt by lowest EER, checkpoint evaluation, resume,
and bad trial lists."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import main_Vox
from dataset.demo_voxceleb import write_voxceleb_demo
from dataset.voxceleb import read_trial_lists
from utils import trials
from utils.build import build_model, fill_model_flags
from utils.sampling import make_loader
from utils.verification import eer, min_dcf

TINY = ["--image_size", "32", "--audio_seconds", "0.5", "--eval_seconds", "1", "--batch_size", "8",
        "--learning_rate", "0.01", "--no_progress"]


@pytest.fixture(scope="module")
def vox_root(tmp_path_factory):
    return write_voxceleb_demo(tmp_path_factory.mktemp("vox") / "VoxCeleb", train_speakers=6,
                               utterances_per_speaker=4, test_speakers=3, test_utterances=3, image_size=40)


def data_flags(root):
    return ["--train_list", str(root / "train_list.csv"), "--trial_lists", str(root / "vox2_test.csv"),
            str(root / "vox1_O.txt"), "--audio_root", str(root / "wav"), "--visual_root", str(root / "faces")]


@pytest.fixture(scope="module")
def vox_run(vox_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("voxruns") / "run"
    main_Vox.main(["--train", *data_flags(vox_root), "--run_dir", str(run_dir), "--epochs", "2",
                   "--mmcosine", "True", "--save_features", "True", *TINY])
    return run_dir


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_demo_trial_lists_read_in_both_formats(vox_root):
    test = read_trial_lists([vox_root / "vox2_test.csv", vox_root / "vox1_O.txt"], vox_root / "wav",
                            vox_root / "faces", seconds=1.0, num_frames=2, image_size=32)
    assert list(test.lists) == ["vox2_test", "vox1_o"]
    # 3 speakers x 3 utterances per list: 36 pairs, 9 of them same-speaker.
    for name in test.lists:
        labels, first, second = test.pairs(name)
        assert len(labels) == 36 and labels.sum() == 9
        assert all(test.keys[a].split("/")[0] == test.keys[b].split("/")[0] for a, b in zip(first[labels == 1],
                                                                                           second[labels == 1]))
    assert len(test) == 18


def test_training_logs_eer_and_min_dcf_per_list_and_modality(vox_run):
    logged = rows(vox_run)
    assert [r["epoch"] for r in logged] == [1, 2]
    for name in ("vox2_test", "vox1_o"):
        for head in ("", "_a", "_v"):
            assert 0 <= logged[-1][f"test_{name}_eer{head}"] <= 100
            assert logged[-1][f"test_{name}_min_dcf{head}"] >= 0
    assert logged[-1]["test_eer"] == logged[-1]["test_vox2_test_eer"]
    assert "train_acc" in logged[-1] and "train_acc_v" in logged[-1]  # speaker classification on the train list
    # best.pt is the epoch with the lowest EER on the first list.
    best = min(logged, key=lambda r: (r["test_eer"], r["epoch"]))
    assert logged[-1]["best_eer"] == best["test_eer"] and logged[-1]["best_epoch"] == best["epoch"]
    assert torch.load(vox_run / "best.pt", weights_only=True)["epoch"] == best["epoch"]
    args = json.loads((vox_run / "args.json").read_text())
    assert args["fusion_method"] == "film"  # the paper's VoxCeleb default


def test_evaluating_best_reproduces_logged_numbers(vox_run, vox_root, capsys):
    logged = {r["epoch"]: r for r in rows(vox_run)}
    epoch = torch.load(vox_run / "best.pt", weights_only=True)["epoch"]
    stats = main_Vox.main(["--ckpt_path", str(vox_run / "best.pt"), *data_flags(vox_root), *TINY])
    for key in ("vox2_test_eer", "vox1_o_eer", "vox1_o_min_dcf", "vox1_o_eer_a", "vox2_test_eer_v"):
        assert stats[key] == pytest.approx(logged[epoch][f"test_{key}"])
    assert "vox1_o EER" in capsys.readouterr().out
    # Nothing but the checkpoint: lists, roots, crop lengths and frame size come from the run.
    alone = main_Vox.main(["--ckpt_path", str(vox_run / "best.pt"), "--no_progress"])
    assert alone["vox1_o_eer"] == pytest.approx(logged[epoch]["test_vox1_o_eer"])


def test_embeddings_and_scores_match_a_direct_computation(vox_run, vox_root):
    """Rows land at their utterance's position whatever the loader order; scores are the cosine of the
    two utterances' logit vectors; the EER / minDCF are those of those scores."""
    ckpt = torch.load(vox_run / "best.pt", weights_only=True)
    args = main_Vox.build_parser().parse_args([*data_flags(vox_root), *TINY])
    fill_model_flags(args, ckpt, main_Vox.SOURCE.model_defaults)
    assert (args.fusion_method, args.mmcosine, args.n_mels, args.speaker_pooling) == ("film", True, 40, "sap")
    model = build_model(args, ckpt["model_config"]["n_classes"], main_Vox.build_encoders(args))
    model.load_state_dict(ckpt["model"])
    model.eval()
    test = read_trial_lists([vox_root / "vox2_test.csv"], vox_root / "wav", vox_root / "faces", 1.0, 2, 32)
    loader = make_loader(test, 4, list(reversed(range(len(test)))), 0, False)
    embedded = trials.embed(model, loader, len(test), torch.device("cpu"))
    direct = {}
    with torch.no_grad():
        for i in (0, 7, len(test) - 1):
            audio, frames, row = test[i]
            out = model({"audio": audio[None],
                         "visual": (frames[None].float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1))
                         / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1)})
            assert row == i
            direct[i] = out
            torch.testing.assert_close(embedded[""][i], out.logits[0], rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(embedded["_a"][i], out.unimodal["audio"][0], rtol=1e-4, atol=1e-4)
    # --save_features kept the same vectors, for the utterances of both lists.
    saved = torch.load(vox_run / "features_best.pt", weights_only=True)
    assert len(saved["utterances"]) == len(saved["logits"]) == 18
    rows = [saved["utterances"].index(key) for key in test.keys]
    torch.testing.assert_close(saved["logits_v"][rows], embedded["_v"], rtol=1e-5, atol=1e-5)
    labels, first, second = test.pairs("vox2_test")
    vectors = embedded[""].double().numpy()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = (unit[first] * unit[second]).sum(1)
    np.testing.assert_allclose(trials.cosine_scores(embedded[""], first, second).numpy(), expected, rtol=1e-10)
    stats = trials.verification_stats(test, embedded)
    assert stats["vox2_test_eer"] == pytest.approx(eer(expected, labels))
    assert stats["vox2_test_min_dcf"] == pytest.approx(min_dcf(expected, labels))


def test_resume_matches_an_uninterrupted_run(vox_root, tmp_path):
    flags = ["--train", *data_flags(vox_root), "--fusion_method", "concat", *TINY]
    main_Vox.main([*flags, "--run_dir", str(tmp_path / "straight"), "--epochs", "2"])
    main_Vox.main([*flags, "--run_dir", str(tmp_path / "cut"), "--epochs", "1"])
    main_Vox.main(["--resume", str(tmp_path / "cut"), "--epochs", "2"])
    straight, resumed = rows(tmp_path / "straight")[-1], rows(tmp_path / "cut")[-1]
    for key in ("train_loss", "test_vox2_test_eer", "test_vox1_o_min_dcf_v"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-5)


def test_uni_modal_and_balancing_methods_run_on_voxceleb(vox_root, tmp_path):
    main_Vox.main(["--train", *data_flags(vox_root), "--method", "audio_only", "--fusion_method", "concat",
                   "--run_dir", str(tmp_path / "a"), "--epochs", "1", *TINY])
    main_Vox.main(["--train", *data_flags(vox_root), "--method", "ogm_ge", "--run_dir", str(tmp_path / "ogm"),
                   "--epochs", "1", "--speaker_batches", "True", "--max_per_speaker", "2", *TINY])
    audio_only, ogm = rows(tmp_path / "a")[0], rows(tmp_path / "ogm")[0]
    # Concat fusion: the uni-modal model's visual head sees zero features, so every trial scores alike, EER 50 %.
    assert audio_only["test_vox2_test_eer_v"] == 50.0 and audio_only["test_vox1_o_eer_v"] == 50.0
    assert 0 < ogm["train_coeff_a"] <= 1 and 0 < ogm["train_coeff_v"] <= 1
    # Plain shuffling (the release) sees all 24 utterances; speaker batches at most 2 of each of the 6 speakers.
    assert audio_only["train_count"] == 24 and 0 < ogm["train_count"] <= 12


@pytest.mark.parametrize("edit,message", [
    (lambda root: (root / "bad.csv").write_text("1,id90001/vid00/00001.wav,id99999/x/00001.wav\n"),
     "1 utterance(s) listed in"),
    (lambda root: (root / "bad.csv").write_text("yes,id90001/vid00/00001.wav,id90001/vid00/00002.wav\n"),
     "must be 0 or 1"),
])
def test_bad_trial_lists_are_one_clear_error(vox_root, tmp_path, capsys, edit, message):
    edit(tmp_path)
    argv = ["--train", *data_flags(vox_root), "--run_dir", str(tmp_path / "run"), *TINY]
    argv[argv.index(str(vox_root / "vox1_O.txt"))] = str(tmp_path / "bad.csv")
    with pytest.raises(SystemExit) as exit_info:
        main_Vox.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "bad.csv" in err


def test_torchrun_evaluation_matches_one_process_and_training_runs(vox_run, vox_root, tmp_path):
    """Each process embeds a shard of the utterances; the summed rows must give the single-process scores."""
    from test_distributed import TORCHRUN, launch_together
    evaluate = ["main_Vox.py", "--ckpt_path", str(vox_run / "best.pt"), *data_flags(vox_root), *TINY, "--device", "cpu"]
    single, double, _ = launch_together(
        [sys.executable, *evaluate], [*TORCHRUN, *evaluate],
        [*TORCHRUN, "main_Vox.py", "--train", *data_flags(vox_root), "--epochs", "1", "--device", "cpu",
         "--run_dir", str(tmp_path / "ddp"), *TINY])
    assert single.stdout.strip().splitlines()[-1] == double.stdout.strip().splitlines()[-1]
    (logged,) = rows(tmp_path / "ddp")
    assert 0 <= logged["test_vox1_o_eer"] <= 100 and logged["train_count"] > 0


def test_linear_probe_explains_it_does_not_apply_to_verification(vox_run, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import linear_probe
    assert linear_probe.main(["--ckpt", str(vox_run / "best.pt"), "--modality", "audio"]) == 2
    assert "per-modality EERs" in capsys.readouterr().err


def test_plot_run_draws_the_eer_curves_of_a_verification_run(vox_run, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import plot_run
    written = {p.name for p in plot_run.plot_runs([vox_run], tmp_path)}
    assert written == {"eer.png", "weight_norms.png"}  # no accuracy or angle panels without their numbers
    assert (tmp_path / "eer.png").read_bytes()[:4] == b"\x89PNG"


def test_a_checkpoint_evaluated_with_other_encoder_flags_is_one_clear_error(vox_run, vox_root, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_Vox.main(["--ckpt_path", str(vox_run / "best.pt"), *data_flags(vox_root), *TINY, "--speaker_pooling", "asp"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "does not fit the model these flags build" in err[0]


def test_a_training_utterance_in_a_trial_list_or_a_repeated_row_is_refused(vox_root, tmp_path, capsys):
    rows = (vox_root / "train_list.csv").read_text().splitlines()
    first, second = rows[0].split(",")[0], rows[1].split(",")[0]
    (tmp_path / "leaky.csv").write_text(f"1,{first},{second}\n")
    (tmp_path / "twice.csv").write_text("\n".join(rows + rows[:1]) + "\n")
    argv = ["--train", *data_flags(vox_root), "--run_dir", str(tmp_path / "run"), *TINY]

    def refused(replaced, by):
        with pytest.raises(SystemExit) as exit_info:
            main_Vox.main([by if flag == replaced else flag for flag in argv])
        assert exit_info.value.code == 2
        return capsys.readouterr().err

    assert "2 clip(s) are in both the train and the trial lists' list" in \
        refused(str(vox_root / "vox1_O.txt"), str(tmp_path / "leaky.csv"))
    assert "1 clip(s) are listed more than once in the train list" in \
        refused(str(vox_root / "train_list.csv"), str(tmp_path / "twice.csv"))
    assert not (tmp_path / "run").exists()
