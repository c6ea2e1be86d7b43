"""Decode-once cache: every clip's audio features and frames, memory-mapped, per split. By default it
stores exactly what the plain path decodes (float32 features, uint8 frames at their own size), so a run
gives the same numbers with and without it. With a frame size (--cache_frame_size) it is lossy, for
space and speed: frames whose short side is larger are downscaled once, features stored as float16; the
run says so.

Features: audio.npy (clips, ...). Frames: frames.bin, every clip's (T, 3, H, W) bytes one after another,
and frame_index.npy, per clip (byte offset, T, H, W): clips may differ in frame count (a training split
whose frames are picked per item keeps them all) and in size.

The folder name is a hash of everything the stored arrays depend on: the clips, their source files'
sizes and modification times, and the preprocessing parameters. Change any of them and a new cache is
built; an old one is never read by mistake. A cache is written to a temporary folder and renamed when
complete, so an interrupted build leaves nothing that could be read. Workers open the files read-only
and share the OS page cache.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

CACHE_VERSION = 2  # 2: exact by default, frames at their own size (1 stored them lossy, at one size)


def cache_folder(cache_dir: Path, name: str, signature: dict) -> Path:
    digest = hashlib.sha1(json.dumps({"version": CACHE_VERSION, **signature}, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / f"{name}-{digest[:16]}"


def file_stamp(path: Path):
    st = os.stat(path)
    return [str(path), st.st_size, st.st_mtime_ns]


def cached_frame_size(frames: torch.Tensor, short_side: Optional[int]):
    """The clip's own size, or scaled down (aspect kept) so the short side is `short_side`."""
    h, w = frames.shape[-2:]
    if short_side is None or min(h, w) <= short_side:
        return h, w
    scale = short_side / min(h, w)
    return round(h * scale), round(w * scale)


class _Decoded(Dataset):
    """What the cache stores, decoded in parallel by DataLoader workers."""

    def __init__(self, source, short_side: Optional[int]):
        self.source, self.short_side = source, short_side

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        audio, frames = self.source.decode(index)
        if self.short_side is None:
            return index, audio.float().numpy(), frames.numpy()
        size = cached_frame_size(frames, self.short_side)
        if tuple(frames.shape[-2:]) != size:
            frames = TF.resize(frames, list(size), antialias=True)
        return index, audio.half().numpy(), frames.numpy()


class FeatureCache:
    """Read-only view of a built cache; opens its memory maps lazily in each process."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self._audio = self._frames = self._index = None

    def __getstate__(self):  # memory maps are reopened in each worker, not pickled
        return {"folder": self.folder, "meta": self.meta, "_audio": None, "_frames": None, "_index": None}

    def __len__(self):
        return self.meta["count"]

    def get(self, index: int):
        """Views into the maps, no copy: the transforms and the collate copy anyway."""
        if self._audio is None:
            # Copy-on-write maps are writable views for torch.from_numpy; the files are never written.
            self._audio = np.load(self.folder / "audio.npy", mmap_mode="c")
            self._frames = np.memmap(self.folder / "frames.bin", dtype=np.uint8, mode="c")
            self._index = np.load(self.folder / "frame_index.npy")
        offset, count, h, w = (int(v) for v in self._index[index])
        frames = self._frames[offset:offset + count * 3 * h * w].reshape(count, 3, h, w)
        return torch.from_numpy(self._audio[index]), torch.from_numpy(frames)


def build_cache(source, folder: Path, short_side: Optional[int] = None, num_workers: int = 0,
                show_progress: bool = True) -> None:
    """Decode every item of `source` (which has decode(i) and __len__) into `folder`: exactly as decoded, or,
    with `short_side`, frames downscaled to it and features as float16."""
    audio0, _ = source.decode(0)
    n = len(source)
    partial = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        dtype = np.float32 if short_side is None else np.float16
        audio = np.lib.format.open_memmap(partial / "audio.npy", "w+", dtype, (n, *audio0.shape))
        index = np.zeros((n, 4), np.int64)
        loader = DataLoader(_Decoded(source, short_side), batch_size=None, num_workers=num_workers)
        offset = 0
        with open(partial / "frames.bin", "wb") as frames:
            for i, a, f in tqdm(loader, total=n, desc=f"caching {folder.name}", dynamic_ncols=True,
                                disable=not show_progress):
                f = np.asarray(f)  # the loader hands numpy arrays back as tensors
                audio[i] = np.asarray(a)
                index[i] = (offset, *f.shape[:1], *f.shape[2:])
                frames.write(np.ascontiguousarray(f).tobytes())
                offset += f.size
        audio.flush()
        del audio
        np.save(partial / "frame_index.npy", index)
        meta = {"count": n, "exact": short_side is None, "frame_short_side": short_side}
        (partial / "meta.json").write_text(json.dumps(meta) + "\n")
        if folder.exists():  # another process finished the same cache first
            return
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
