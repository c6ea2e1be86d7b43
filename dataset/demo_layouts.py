"""Small demo sets with the cues of dataset/demo_cues.py (six classes) in the on-disk layouts of
Kinetics-Sounds, AVE and VGGSound that main_KS.py, main_AVE.py and main_VGG.py read (and that
scripts/prepare_*.py write from the real videos). Deterministic in the seed.

Each writes audio/<clip>.wav and frames/<clip>/00001.jpg, ... (10 frames: 1 a second of a 10 s clip, so
the reference frame picks have segments to choose in) plus the dataset's own list files:
- Kinetics-Sounds: my_train.txt / my_test.txt, rows `<youtube id>_<start>_<end>,10,<class index>`;
- AVE: trainSet.txt / valSet.txt / testSet.txt, rows `Category&VideoID&Quality&StartTime&EndTime`
  (one training video listed twice, as the real lists do; a third of the rows 0&10, the others shorter
  events), with the clips in the event-segment layout main_AVE.py reads by default (audio_event/,
  frames_event/, each marked "event": a demo clip stands for its event);
- VGGSound: vggsound.csv, rows `youtube id,start,label,split`, with some listed clips that are not on
  disk (as most VGGSound copies have): its demo trains with --skip_missing True.
"""
import csv
from pathlib import Path

import numpy as np

from .ave import SEGMENT_FOLDERS, mark_prepared
from .demo_cues import write_clip

ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
AVE_CATEGORIES = ["Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
                  "Race car, auto racing", "Female speech, woman speaking"]
VGGSOUND_LABELS = ["dog barking", "playing acoustic guitar", "people marching", "church bell ringing",
                   "car engine starting", "female singing"]


def youtube_id(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(ID_CHARS), 11))


def demo_clips(out: Path, clips_per_class: int, seed: int, frames_per_clip: int, image_size, name_of,
               folders=("audio", "frames")):
    """Write clips_per_class clips per class into out/<folders[0]>/ (wavs) and out/<folders[1]>/ (frames);
    name_of(youtube id, rng) names a clip. Returns [(clip, label)]."""
    rng = np.random.default_rng(seed)
    audio, frames = out / folders[0], out / folders[1]
    audio.mkdir(parents=True, exist_ok=True)
    clips = []
    for label in range(len(AVE_CATEGORIES)):
        for _ in range(clips_per_class):
            clip = name_of(youtube_id(rng), rng)
            write_clip(audio / f"{clip}.wav", frames / clip, label, rng, frames_per_clip, image_size)
            clips.append((clip, label))
    return clips


def every_kth(clips, k: int, offset: int = 0):
    """The clips at positions offset, offset + k, ... of each class's run (the demo's fixed splits)."""
    return [c for i, c in enumerate(clips) if i % k == offset]


def write_kinetics_sounds_demo(out: Path, clips_per_class: int = 8, seed: int = 0, frames_per_clip: int = 10,
                               image_size=64) -> Path:
    out = Path(out)

    def name(yt, rng):
        start = int(rng.integers(0, 300))
        return f"{yt}_{start:06d}_{start + 10:06d}"
    clips = demo_clips(out, clips_per_class, seed, frames_per_clip, image_size, name)
    test = every_kth(clips, 4)
    train = [c for c in clips if c not in test]
    for path, items in ((out / "my_train.txt", train), (out / "my_test.txt", test)):
        path.write_text("".join(f"{clip},10,{label}\n" for clip, label in items))
    return out


def write_ave_demo(out: Path, clips_per_class: int = 8, seed: int = 0, frames_per_clip: int = 10,
                   image_size=64) -> Path:
    out = Path(out)
    folders = SEGMENT_FOLDERS["event"]
    for folder in folders:
        mark_prepared(out / folder, "event")
    clips = demo_clips(out, clips_per_class, seed, frames_per_clip, image_size, lambda yt, rng: yt, folders)
    test, val = every_kth(clips, 4), every_kth(clips, 4, 1)
    train = [c for c in clips if c not in test and c not in val]
    train.append(train[0])  # a video listed twice, as in the real trainSet.txt: read once
    rng = np.random.default_rng(seed + 1)
    segments = {clip: (0, 10) if i % 3 == 0 else tuple(sorted(int(t) for t in rng.choice(11, 2, replace=False)))
                for i, (clip, _) in enumerate(clips)}

    def row(clip, label):
        return f"{AVE_CATEGORIES[label]}&{clip}&good&{segments[clip][0]}&{segments[clip][1]}\n"
    for name, items in (("trainSet.txt", train), ("valSet.txt", val), ("testSet.txt", test)):
        (out / name).write_text("".join(row(*c) for c in items))
    return out


def write_vggsound_demo(out: Path, clips_per_class: int = 8, seed: int = 0, frames_per_clip: int = 10,
                        image_size=64, missing_per_class: int = 2) -> Path:
    out = Path(out)
    listed = {}  # clip -> (youtube id, start as vggsound.csv writes it: no zero padding)

    def name(yt, rng):
        start = int(rng.integers(0, 300))
        listed[f"{yt}_{start:06d}"] = (yt, str(start))
        return f"{yt}_{start:06d}"
    clips = demo_clips(out, clips_per_class, seed, frames_per_clip, image_size, name)
    test = set(every_kth(clips, 4))
    rows = [[*listed[clip], VGGSOUND_LABELS[label], "test" if (clip, label) in test else "train"]
            for clip, label in clips]
    rng = np.random.default_rng(seed + 1)
    for label in range(len(VGGSOUND_LABELS)):  # gone from YouTube: listed, never downloaded
        rows += [[youtube_id(rng), str(int(rng.integers(0, 300))), VGGSOUND_LABELS[label], "train"]
                 for _ in range(missing_per_class)]
    with open(out / "vggsound.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return out
