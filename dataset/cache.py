"""Decode-once cache: every clip's spectrogram (float16) and frames (uint8, downscaled once
when larger than needed) in two memory-mapped .npy files per split. Frames are stored
(clips, T, 3, H, W) when every clip has as many, else (all frames, 3, H, W) with each clip's
first frame in frame_offsets.npy (a training split whose frames are picked per item keeps
every frame of each clip, and clips differ in length).

The folder name is a hash of everything the decoded arrays depend on: the clips, their
source files' sizes and modification times, and the preprocessing parameters. Change any
of them and a new cache is built; an old one is never read by mistake. A cache is written
to a temporary folder and renamed when complete, so an interrupted build leaves nothing
that could be read. Workers open the files read-only and share the OS page cache.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

CACHE_VERSION = 1


def cache_folder(cache_dir: Path, name: str, signature: dict) -> Path:
    digest = hashlib.sha1(json.dumps({"version": CACHE_VERSION, **signature}, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / f"{name}-{digest[:16]}"


def file_stamp(path: Path):
    st = os.stat(path)
    return [str(path), st.st_size, st.st_mtime_ns]


def fit_frames(frames: torch.Tensor, size_hw) -> torch.Tensor:
    if tuple(frames.shape[-2:]) == tuple(size_hw):
        return frames
    return TF.resize(frames, list(size_hw), antialias=True)


def cached_frame_size(frames: torch.Tensor, short_side: int):
    """The clip's own size, or scaled down (aspect kept) so the short side is `short_side`."""
    h, w = frames.shape[-2:]
    if min(h, w) <= short_side:
        return h, w
    scale = short_side / min(h, w)
    return round(h * scale), round(w * scale)


class _Decoded(Dataset):
    """What the cache stores, decoded in parallel by DataLoader workers."""

    def __init__(self, source, size_hw):
        self.source, self.size_hw = source, size_hw

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        audio, frames = self.source.decode(index)
        return index, audio.half().numpy(), fit_frames(frames, self.size_hw).numpy()


class FeatureCache:
    """Read-only view of a built cache; opens its memory maps lazily in each process."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self._audio = self._frames = self._offsets = None

    def __getstate__(self):  # memory maps are reopened in each worker, not pickled
        return {"folder": self.folder, "meta": self.meta, "_audio": None, "_frames": None, "_offsets": None}

    def __len__(self):
        return self.meta["count"]

    def get(self, index: int):
        """Views into the maps, no copy: the transforms and the collate copy anyway."""
        if self._audio is None:
            # Copy-on-write maps are writable views for torch.from_numpy; the files are never written.
            self._audio = np.load(self.folder / "audio.npy", mmap_mode="c")
            self._frames = np.load(self.folder / "frames.npy", mmap_mode="c")
            if self.meta.get("frame_offsets"):
                self._offsets = np.load(self.folder / "frame_offsets.npy")
        if self._offsets is None:
            return torch.from_numpy(self._audio[index]), torch.from_numpy(self._frames[index])
        start, end = self._offsets[index], self._offsets[index + 1]
        return torch.from_numpy(self._audio[index]), torch.from_numpy(self._frames[start:end])


def build_cache(source, folder: Path, short_side: int, num_workers: int = 0, show_progress: bool = True) -> None:
    """Decode every item of `source` (which has decode(i) and __len__, and frame_counts() when its clips
    may differ in frame count) into `folder`."""
    audio0, frames0 = source.decode(0)
    size_hw = cached_frame_size(frames0, short_side)
    n = len(source)
    counts = source.frame_counts() if hasattr(source, "frame_counts") else [frames0.shape[0]] * n
    uniform = len(set(counts)) == 1  # the layout every cache had before clips could differ in length
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    partial = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        audio = np.lib.format.open_memmap(partial / "audio.npy", "w+", np.float16, (n, *audio0.shape))
        shape = (n, counts[0], 3, *size_hw) if uniform else (int(offsets[-1]), 3, *size_hw)
        frames = np.lib.format.open_memmap(partial / "frames.npy", "w+", np.uint8, shape)
        loader = DataLoader(_Decoded(source, size_hw), batch_size=None, num_workers=num_workers)
        for index, a, f in tqdm(loader, total=n, desc=f"caching {folder.name}", dynamic_ncols=True,
                                disable=not show_progress):
            if f.shape[0] != counts[index]:
                raise RuntimeError(f"clip {index} decoded to {f.shape[0]} frames, not the {counts[index]} listed")
            audio[index] = a
            if uniform:
                frames[index] = f
            else:
                frames[offsets[index]:offsets[index + 1]] = f
        audio.flush()
        frames.flush()
        del audio, frames
        meta = {"count": n, "frame_size": list(size_hw)}
        if not uniform:
            np.save(partial / "frame_offsets.npy", offsets)
            meta["frame_offsets"] = True
        (partial / "meta.json").write_text(json.dumps(meta) + "\n")
        if folder.exists():  # another process finished the same cache first
            return
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
