"""A small demo set in the UCF-101 layout that main_UCF.py reads (dataset/ucf101.py): rgb/<video>/frame_%05d.jpg,
flow/u|v/<video>/frame%06d.jpg, and, unless lists=False, ucfTrainTestlist/classInd.txt with the split 1 lists
(without them the split comes from the video names' groups).

Six real UCF-101 classes, chosen where class order and naming have traps: Hammering / HammerThrow and
JumpingJack / JumpRope (Python's sort swaps them), HandstandPushups (its files say v_HandStandPushups_*).
Videos v_<Class>_g<GG>_c01 take groups spread over g01-g25, so every split has train and test videos.

Cues, deterministic in the seed, with a known imbalance as the audio-visual demos' (dataset/demo_cues.py):
- flow (the easy but incomplete cue): a noisy zero-motion field (128) with one square moving down, up or
  sideways (class k // 2), strongly. Sideways is left or right at random, so a flip (which negates u) keeps the
  class; it separates the three class pairs but says nothing about which class of the pair.
- RGB (the weaker cue that completes it): the low-contrast coloured square whose colour says k.
"""
from pathlib import Path

import numpy as np
from PIL import Image

from .demo_cues import synth_frame

UCF_DEMO_CLASSES = ["ApplyEyeMakeup", "Hammering", "HammerThrow", "HandstandPushups", "JumpingJack", "JumpRope"]
FILE_SPELLING = {"HandstandPushups": "HandStandPushups"}  # as in UCF-101's file names
MOTION_PX = 8.0                                            # of the +-20 px the flow images encode
BOUND_PX = 20.0


def video_names(clips_per_class: int):
    """[(class folder, video stem)]: groups spread over 1-25, one clip each."""
    names = []
    for cls in UCF_DEMO_CLASSES:
        for i in range(clips_per_class):
            group = 1 + (i * 25) // clips_per_class
            names.append((cls, f"v_{FILE_SPELLING.get(cls, cls)}_g{group:02d}_c01"))
    return names


def synth_flow(label: int, size: int, rng: np.random.Generator):
    """(u, v) uint8 images: displacement d px stored as round(255 * (d + 20) / 40)."""
    u, v = rng.normal(0, 1.5, (2, size, size))
    side = max(2, size // 3)
    top, left = rng.integers(0, size - side + 1, 2)
    direction = label // 2
    du, dv = [(0.0, MOTION_PX), (0.0, -MOTION_PX), (rng.choice([-1.0, 1.0]) * MOTION_PX, 0.0)][direction]
    u[top:top + side, left:left + side] += du
    v[top:top + side, left:left + side] += dv
    encode = lambda d: np.round(255 * (np.clip(d, -BOUND_PX, BOUND_PX) + BOUND_PX) / (2 * BOUND_PX)).astype(np.uint8)
    return encode(u), encode(v)


def write_ucf101_demo(out: Path, clips_per_class: int = 8, seed: int = 0, frames_per_clip: int = 6,
                      image_size: int = 32, flow_frames: int = 18, lists: bool = True) -> Path:
    """Write the tree under `out` and return it. Same seed, same bytes."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls, stem in video_names(clips_per_class):
        label = UCF_DEMO_CLASSES.index(cls)
        rgb = out / "rgb" / stem
        rgb.mkdir(parents=True, exist_ok=True)
        for j in range(frames_per_clip):
            Image.fromarray(synth_frame(label, image_size, rng)).save(rgb / f"frame_{j + 1:05d}.jpg", quality=90)
        for axis in ("u", "v"):
            (out / "flow" / axis / stem).mkdir(parents=True, exist_ok=True)
        for j in range(flow_frames):
            for axis, image in zip(("u", "v"), synth_flow(label, image_size, rng)):
                Image.fromarray(image).save(out / "flow" / axis / stem / f"frame{j + 1:06d}.jpg", quality=90)
        group = int(stem.split("_g")[1][:2])
        (test if group <= 7 else train).append(f"{cls}/{stem}.avi")
    if lists:
        folder = out / "ucfTrainTestlist"
        folder.mkdir(exist_ok=True)
        ids = {cls: i + 1 for i, cls in enumerate(UCF_DEMO_CLASSES)}
        # CRLF line ends, as the official zip may have them: the reader strips them
        (folder / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for c, i in ids.items()).encode())
        (folder / "trainlist01.txt").write_bytes("".join(f"{e} {ids[e.split('/')[0]]}\r\n" for e in train).encode())
        (folder / "testlist01.txt").write_bytes("".join(f"{e}\r\n" for e in test).encode())
    return out
