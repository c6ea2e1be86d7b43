"""The reader shared by the datasets whose clips are a wav file plus extracted frames
(CREMA-D, SSW60, Kinetics-Sounds, AVE, VGGSound): listing, missing-file checks, decoding (with the
dataset's audio recipe), caching and transforms."""
import copy
from pathlib import Path
from typing import List, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from .audio_recipes import Spectrogram
from .cache import file_stamp
from .errors import DataError
from .frame_picks import FramePick
from .visual import IMAGE_SUFFIXES, frame_transform, list_frames, read_frames


class AVClipDataset(Dataset):
    """Clips with one wav (`audio_dir/<clip>.wav`) and frames (`frames_dir/<clip>/*.jpg`, or
    `frames_dir/<clip>.jpg`). Items are (audio (1, F, T) float from the audio recipe (default: the
    reference spectrogram of `audio_seconds`), visual (3, T, S, S) uint8, label). Keys are (index,
    augmentation seed). With `cache` set, decoded inputs come from it.

    `frame_pick` (dataset/frame_picks.py) chooses the T frames; a pick drawn at random (segments, at
    training) is made in __getitem__ from every frame of the clip, which the items then list (and the
    cache stores); the others are made here. `frame_augment`: one crop/flip per "clip" or per "frame"."""

    def __init__(self, audio_dir, frames_dir, samples: Sequence[Tuple[str, int]], train: bool,
                 image_size: int = 224, num_frames: int = 1, audio_seconds: float = 3.0,
                 skip_missing: bool = False, split_name: str = "split", audio_recipe=None,
                 frame_pick: str = "even", frame_augment: str = "clip"):
        # split_name: a noun phrase for messages, e.g. "train split (the paper's)"
        self.audio_dir = Path(audio_dir)
        self.frames_dir = Path(frames_dir)
        self.num_frames = num_frames
        self.audio_recipe = audio_recipe if audio_recipe is not None else Spectrogram(audio_seconds)
        self.train = train
        self.transform = frame_transform(train, image_size, frame_augment)
        self.frame_pick = FramePick(frame_pick, num_frames)
        self.pick_per_item = train and self.frame_pick.random_when_training()
        self.cache = None
        self.items, missing = [], []
        for clip, label in samples:
            wav = self.audio_dir / f"{clip}.wav"
            frames = self._frame_paths(clip)
            if not wav.is_file() or not frames:
                missing.append(clip)
                continue
            self.items.append((clip, label, wav, frames))
        self.n_skipped = len(missing)
        if missing and not skip_missing:
            raise DataError(f"{len(missing)} clip(s) of the {split_name} lack a wav in {self.audio_dir} or frames in "
                            f"{self.frames_dir} (first: {', '.join(missing[:5])}). Fix the data, or pass "
                            "--skip_missing True to train without them")
        if not self.items:
            raise DataError(f"the {split_name} has no usable clips. Check --data_root and the split file")

    def _frame_paths(self, clip: str) -> List[Path]:
        """The frames decode() reads: every frame when the pick is made per item, else the picked ones."""
        folder = self.frames_dir / clip
        if folder.is_dir():
            frames = list_frames(folder)
            if self.pick_per_item or not frames:
                return frames
            return [frames[i] for i in self.frame_pick.indices(len(frames), self.train)]
        for suffix in IMAGE_SUFFIXES:
            single = self.frames_dir / f"{clip}{suffix}"
            if single.is_file():
                return [single] if self.pick_per_item else [single] * self.num_frames
        return []

    def readable_files(self) -> List[Path]:
        """Every file this split reads (for the header check before training)."""
        return [wav for _, _, wav, _ in self.items] + [f for _, _, _, frames in self.items for f in frames]

    def evaluation_view(self) -> "AVClipDataset":
        """The same clips (and cache) with the test-time transform and frame pick: held-out parts of
        train are scored as a validation set is, without augmentation."""
        view = copy.copy(self)
        view.transform, view.train = self.transform.for_evaluation(), False
        return view

    @property
    def labels(self) -> List[int]:
        return [label for _, label, _, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def decode(self, index: int):
        """The clip's audio features (1, F, T) float32 as the recipe stores them, and its frames (N, 3, H, W)
        uint8: the T picked ones, or every frame of the clip when the pick is made per item."""
        _, _, wav, frames = self.items[index]
        return self.audio_recipe.features(wav), read_frames(frames)

    def cache_signature(self) -> dict:
        """Everything decode() depends on (see dataset/cache.py)."""
        return {"audio": self.audio_recipe.signature(),
                "items": [[clip, file_stamp(wav), [file_stamp(f) for f in frames]]
                          for clip, _, wav, frames in self.items]}

    def _inputs(self, index: int):
        """The item's audio features and its T frames. A pick made per item (drawn from torch's generator,
        which __getitem__ seeds) reads only the picked frames: of the cache's, or of the files, so the plain
        path decodes T jpgs, not every frame of the clip."""
        if self.cache is not None:
            audio, frames = self.cache.get(index)
            if self.pick_per_item:
                frames = frames[self.frame_pick.indices(len(frames), self.train)]
            return audio, frames
        _, _, wav, paths = self.items[index]
        if self.pick_per_item:
            paths = [paths[i] for i in self.frame_pick.indices(len(paths), self.train)]
        return self.audio_recipe.features(wav), read_frames(paths)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        with torch.random.fork_rng(devices=[]):
            # A per-(epoch, sample) seed makes augmentation independent of workers, ranks and resumes.
            if seed is not None:
                # The CPU generator alone: torch.manual_seed would also queue CUDA seeding (~0.4 ms a call).
                torch.default_generator.manual_seed(seed)
            audio, frames = self._inputs(index)
            visual = self.transform(frames)  # (T, 3, S, S) uint8
            audio = self.audio_recipe.crop(audio, self.train)
        return audio, visual.transpose(0, 1).contiguous(), self.items[index][1]
