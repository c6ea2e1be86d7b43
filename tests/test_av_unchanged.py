"""Audio-visual runs train as they did before the modality-keyed redesign (issue 21): a seeded CREMA-D run for
each fusion, with and without MMCosine, logs the numbers the code before the change logged (one run per method
is compared in tests/test_methods.py), and the checkpoints that code wrote still load."""
import pytest
import torch

import main_CD
from conftest import TINY_FLAGS
from helpers.av_reference import check_run
from models.fusion import FUSIONS


@pytest.mark.parametrize("mmcosine", ["False", "True"])
@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_seeded_fusion_run_is_unchanged(fusion, mmcosine, demo_root, tmp_path):
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(tmp_path / "run"), "--epochs", "2",
                  "--fusion_method", fusion, "--mmcosine", mmcosine, *TINY_FLAGS])
    check_run(f"fusion {fusion} mmcosine {mmcosine}", tmp_path / "run")


def legacy(state: dict) -> dict:
    """A state dict with the keys checkpoints had before modalities were keyed (the inverse renaming)."""
    from utils.checkpoint import LEGACY_PREFIXES
    renamed = {}
    for key, value in state.items():
        for old, new in LEGACY_PREFIXES.items():
            if key.startswith(new):
                key = old + key[len(new):]
                break
        renamed[key] = value
    return renamed


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_checkpoints_written_before_the_change_load(fusion):
    """The key sets the code before the change wrote (recorded) are exactly this model's, renamed back."""
    from helpers.av_reference import legacy_key_sets
    from helpers.tiny_models import resnet_classifier
    from utils.checkpoint import load_model_state
    model = resnet_classifier(6, fusion, mmcosine=True)
    old = legacy(model.state_dict())
    assert sorted(old) in legacy_key_sets().values()
    fresh = resnet_classifier(6, fusion, mmcosine=True)
    load_model_state(fresh, old, "old.pt")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())


def test_a_run_directory_written_before_the_change_resumes_exactly(demo_root, tmp_path):
    """Epoch 1, its last.pt rewritten as the code before the change wrote it, then --resume to epoch 2: the same
    numbers as the uninterrupted 2-epoch run of the code before the change."""
    run = tmp_path / "run"
    flags = ["--data_root", str(demo_root), *TINY_FLAGS]
    main_CD.main(["--train", "--run_dir", str(run), "--epochs", "1", "--fusion_method", "gated", "--mmcosine", "True",
                  *flags])
    state = torch.load(run / "last.pt", weights_only=False)
    state["model"] = legacy(state["model"])
    del state["model_config"]["dataset_modalities"]
    torch.save(state, run / "last.pt")
    main_CD.main(["--train", "--resume", str(run), "--epochs", "2", *flags])
    check_run("fusion gated mmcosine True", run)
