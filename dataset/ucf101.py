"""UCF-101 (101 actions) as RGB frames + TV-L1 optical flow, in the layout of the public precomputed sets and of
scripts/prepare_ucf101.py:

DATA_ROOT/rgb/<video>/frame_00001.jpg, ...       1 frame per second (the release reads frame_00001-00006)
DATA_ROOT/flow/u/<video>/frame000001.jpg, ...    horizontal flow, grayscale, 0..255 = -20..+20 px
DATA_ROOT/flow/v/<video>/frame000001.jpg, ...    vertical flow, as many as u
DATA_ROOT/classInd.txt, trainlist0N.txt, testlist0N.txt   optional (also under ucfTrainTestlist/)

<video> is the file stem, v_<Class>_g<GG>_c<CC>. Classes and splits: dataset/ucf101_splits.py; which frames
an item reads (--recipe): dataset/ucf101_recipes.py; flow storage and augmentation: dataset/flow.py.
"""
import copy
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from .errors import DataError
from .flow import FlowClipTransform, flow_to_model_input, read_flow
from .modalities import Modality
from .ucf101_recipes import recipe_named
from .visual import IMAGE_SUFFIXES, frame_transform, frames_to_model_input, read_frames

RGB = Modality("rgb", "rgb", frames_to_model_input)
FLOW = Modality("flow", "flow", flow_to_model_input)
UCF_MODALITIES = (RGB, FLOW)

FLOW_NAME = "frame{:06d}.jpg"  # the TV-L1 sets' names, numbered from 1


def image_names(folder: Path) -> List[str]:
    """The images of a folder, sorted by name ([] when there is no folder); names only, as the real set holds
    millions of flow images."""
    try:
        return sorted(name for name in os.listdir(folder) if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES)
    except (FileNotFoundError, NotADirectoryError):
        return []


def flow_problem(u: List[str], v: List[str], u_dir: Path, v_dir: Path) -> Optional[str]:
    """Why a video's flow cannot be read (by listing its folders, not decoding them), or None."""
    if not u or not v:
        return f"no flow images in {u_dir if not u else v_dir}"
    if len(u) != len(v):
        return f"{len(u)} u but {len(v)} v flow images"
    for names, folder in ((u, u_dir), (v, v_dir)):
        expected = {FLOW_NAME.format(1), FLOW_NAME.format(len(names))}
        if not expected <= set(names):
            return f"{folder} does not hold {' and '.join(sorted(expected))} (flow images are read by their number)"
    return None


class UCF101Dataset(Dataset):
    """Items (rgb (3, 3, S, S) uint8, flow (2, T_f, S, S) uint8, label); T_f by the recipe (16 release, 1
    release_2d, 3 balancebenchmark). Keys are (index, augmentation seed), as AVClipDataset's.

    Train: RandomResizedCrop(S) + horizontal flip, one draw for the RGB frames and one for the whole flow clip
    (u and v alike, u negated on a flip); test: resize to (S, S). Every listed video is checked when the
    dataset is built: RGB frames, u and v flow, as many u as v; one that fails is a DataError naming it, or,
    with skip_missing, left out and counted (n_skipped)."""

    def __init__(self, root, samples: Sequence[Tuple[str, int]], train: bool, recipe: str = "release",
                 image_size: int = 224, rgb_dir: str = "rgb", flow_dir: str = "flow", skip_missing: bool = False,
                 split_name: str = "split"):
        self.root, self.train, self.recipe = Path(root), train, recipe_named(recipe)
        self.rgb_root, self.flow_root = self.root / rgb_dir, self.root / flow_dir
        self.rgb_transform = frame_transform(train, image_size, "clip")
        self.flow_transform = FlowClipTransform(train, image_size)
        self.items, bad = [], []  # items: (video, label, RGB frame names, number of flow pairs)
        for video, label in samples:
            rgb = image_names(self.rgb_root / video)
            u_dir, v_dir = self.flow_root / "u" / video, self.flow_root / "v" / video
            u = image_names(u_dir) if rgb else []
            problem = flow_problem(u, image_names(v_dir), u_dir, v_dir) if rgb else \
                f"no RGB frames in {self.rgb_root / video}"
            if problem:
                bad.append(f"{video} ({problem})")
                continue
            self.items.append((video, label, rgb, len(u)))
        self.skipped, self.n_skipped = bad, len(bad)  # runs say how many (utils/datasets.py note_skipped)
        if bad and not skip_missing:
            raise DataError(f"{len(bad)} video(s) of the {split_name} cannot be read (first: {'; '.join(bad[:3])}). "
                            "Prepare them again with scripts/prepare_ucf101.py (it redoes videos without a done "
                            "marker; delete prepared/<video>.done to force one), or pass --skip_missing True to "
                            "train without them")
        if not self.items:
            raise DataError(f"the {split_name} has no usable videos. Check --data_root, --rgb_dir and --flow_dir")

    def _rgb_paths(self, index: int, ordinals: Sequence[int]) -> List[Path]:
        video, _, names, _ = self.items[index]
        return [self.rgb_root / video / names[t - 1] for t in ordinals]

    def _flow_paths(self, index: int, ordinals: Sequence[int]):
        video = self.items[index][0]
        names = [FLOW_NAME.format(t) for t in ordinals]
        return ([self.flow_root / "u" / video / n for n in names], [self.flow_root / "v" / video / n for n in names])

    def readable_files(self) -> List[Path]:
        """Every file this split may read (for the header check before training)."""
        files = []
        for index, (_, _, names, n_flow) in enumerate(self.items):
            files += self._rgb_paths(index, self.recipe.reachable_rgb(len(names), self.train))
            u, v = self._flow_paths(index, self.recipe.reachable_flow(n_flow, self.train))
            files += u + v
        return files

    def evaluation_view(self) -> "UCF101Dataset":
        """The same videos with the test-time frames and transforms (held-out parts of train are scored so)."""
        view = copy.copy(self)
        view.train = False
        view.rgb_transform = self.rgb_transform.for_evaluation()
        view.flow_transform = self.flow_transform.for_evaluation()
        return view

    @property
    def labels(self) -> List[int]:
        return [label for _, label, _, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        _, label, names, n_flow = self.items[index]
        with torch.random.fork_rng(devices=[]):
            # A per-(epoch, sample) seed makes frame picks and augmentation independent of workers, ranks, resumes.
            if seed is not None:
                torch.default_generator.manual_seed(seed)  # the CPU generator alone (see dataset/clips.py)
            rgb_ordinals = self.recipe.rgb_ordinals(len(names), self.train)
            flow_ordinals = self.recipe.flow_ordinals(n_flow, self.train)
            rgb = self.rgb_transform(read_frames(self._rgb_paths(index, rgb_ordinals)))       # (3 frames, 3, S, S)
            flow = self.flow_transform(read_flow(*self._flow_paths(index, flow_ordinals)))    # (T_f, 2, S, S)
        return rgb.transpose(0, 1).contiguous(), flow.transpose(0, 1).contiguous(), label
