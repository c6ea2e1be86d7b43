import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A small demo tree in the real CREMA-D layout (folder-per-clip frames), shared by the suite."""
    from dataset.demo import write_demo
    return write_demo(tmp_path_factory.mktemp("demo") / "CREMA-D", clips_per_class=4, seed=0,
                      layout="folder", frames_per_clip=3, image_size=40, test_fraction=0.25)


# Small, fast settings for end-to-end runs of the entry scripts.
TINY_FLAGS = ["--image_size", "32", "--audio_seconds", "0.5", "--batch_size", "8", "--no_progress",
              "--learning_rate", "0.01"]


@pytest.fixture(scope="session")
def trained_run(demo_root, tmp_path_factory):
    """A finished 2-epoch concat + MMCosine run with saved features, shared by the read-only tests."""
    import main_CD
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    main_CD.main(["--train", "--data_root", str(demo_root), "--run_dir", str(run_dir), "--epochs", "2",
                  "--fusion_method", "concat", "--mmcosine", "True", "--scaling", "10", "--save_features", "True",
                  *TINY_FLAGS])
    return run_dir
