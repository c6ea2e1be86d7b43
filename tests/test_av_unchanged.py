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
