"""A small generated three-modality dataset and an entry script for it, run through the project's real runner,
so that what is claimed for any number of modalities (fusion, MMCosine, diagnostics, Shapley contributions,
methods, summaries) is checked before a real three-modality dataset arrives.

On disk: <root>/classes.txt, <root>/{train,test}.csv (rows `<clip>,<label>`), and <root>/clips/<clip>.npz holding
x (1, 16, 12) float32, y (3, 2, 16, 16) uint8 frames, z (1, 16, 12) float32. Each modality carries its own,
noisy, cue of the class, of a different strength."""
import argparse
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dataset.errors import DataError
from dataset.modalities import Modality, frames_input, spectrogram_input
from dataset.splits import read_split
from helpers.tiny_models import TinyEncoder
from utils.args import add_list_check_args, add_shared_args, entry_parser
from utils.cli import run_main
from utils.datasets import labelled_clip_datasets
from utils.runner import DataSource

MODALITIES = (Modality("x", "x", spectrogram_input), Modality("y", "y", frames_input),
              Modality("z", "z", spectrogram_input))
CLASSES = ["c0", "c1", "c2"]


def write_three_modality_demo(root: Path, clips_per_class: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    rows = {"train": [], "test": []}
    for k, name in enumerate(CLASSES):
        for i in range(clips_per_class):
            clip = f"{name}_{i:02d}"
            x = rng.normal(size=(1, 16, 12)).astype("float32")
            x[0, 4 * k:4 * k + 4] += 2.0   # strong cue
            y = rng.integers(0, 200, size=(3, 2, 16, 16)).astype("uint8")
            y[k] = np.minimum(y[k].astype(int) + 50, 255).astype("uint8")  # weaker cue: one colour channel brighter
            z = rng.normal(size=(1, 16, 12)).astype("float32")
            z[0, :, 4 * k:4 * k + 4] += 0.5  # weakest cue
            np.savez(root / "clips" / f"{clip}.npz", x=x, y=y, z=z)
            rows["test" if i < clips_per_class // 3 else "train"].append(f"{clip},{name}")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


class ThreeModalityClips(Dataset):
    def __init__(self, root: Path, samples, train: bool, split_name: str):
        self.root, self.train = Path(root), train
        self.items = [(clip, label) for clip, label in samples]
        missing = [clip for clip, _ in self.items if not (self.root / "clips" / f"{clip}.npz").is_file()]
        if missing:
            raise DataError(f"{len(missing)} clip(s) of the {split_name} have no {self.root / 'clips'}/<clip>.npz "
                            f"(first: {missing[0]})")

    @property
    def labels(self):
        return [label for _, label in self.items]

    def evaluation_view(self):
        return ThreeModalityClips(self.root, self.items, False, "evaluation view")

    def __len__(self):
        return len(self.items)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        clip, label = self.items[index]
        data = np.load(self.root / "clips" / f"{clip}.npz")
        return torch.from_numpy(data["x"]), torch.from_numpy(data["y"]), torch.from_numpy(data["z"]), label


def build_parser() -> argparse.ArgumentParser:
    parser = entry_parser(__doc__)
    g = parser.add_argument_group("generated three-modality data")
    g.add_argument("--data_root", required=True)
    add_list_check_args(g)
    add_shared_args(parser, "the tests", epochs=2, batch_size=6, lr_decay_step=10, modalities=MODALITIES)
    return parser


def build_datasets(args, with_train: bool):
    root = Path(args.data_root)
    train = read_split(root / "train.csv", CLASSES)
    test = read_split(root / "test.csv", CLASSES)

    def make(samples, is_train, split_name):
        return ThreeModalityClips(root, samples, is_train, split_name)
    return labelled_clip_datasets(args, CLASSES, train, test, "generated", make, with_train, root)


SOURCE = DataSource(name="three", script="tests/helpers/three_modalities.py", build=build_datasets,
                    modalities=MODALITIES,
                    encoders=lambda args: {"x": TinyEncoder(1), "y": TinyEncoder(3), "z": TinyEncoder(1)})


def main(argv=None):
    return run_main(build_parser(), SOURCE, argv)
