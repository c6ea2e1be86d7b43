"""Writes a small synthetic dataset in exactly the CREMA-D on-disk layout, so the demo
and the tests run the real readers end to end.

    python -m dataset.demo --out demo_data/CREMA-D [--clips_per_class 30] [--layout folder|single]
    python -m dataset.demo --dataset ssw60 --out demo_data/SSW60 [--clips_per_class 30]
    python -m dataset.demo --dataset voxceleb --out demo_data/VoxCeleb   (layout: dataset/demo_voxceleb.py)
    python -m dataset.demo --dataset kinetics_sounds | ave | vggsound     (layouts: dataset/demo_layouts.py)
    python -m dataset.demo --dataset ucf101 --out demo_data/UCF101         (RGB + flow: dataset/demo_ucf101.py)
    python -m dataset.demo --dataset mosei --out demo_data/MOSEI           (MulT pickles: dataset/demo_mosei.py)
    python -m dataset.demo --dataset food101 --out demo_data/Food101       (image + title, and a tiny local BERT in
                                                                            OUT/text_model: dataset/demo_food101.py)

How a clip of class k (0..5 = NEU HAP SAD FEA DIS ANG) is built, deterministically from --seed:
- audio (the easy but incomplete cue): a tone whose pitch is set by k // 2 (three pitches,
  +-3% jitter, random phase and loudness) in white noise. It separates the three class
  pairs {NEU,HAP} {SAD,FEA} {DIS,ANG} clearly but says nothing about which class of the
  pair: audio alone tops out near 50%.
- visual (the weaker cue that completes it): a noisy grey frame with one low-contrast
  coloured square (a fifth of the side, colour mixed 30/70 with grey) at a random place;
  its colour is one of six, set by k. Harder to learn
  than the tone, but the only source of the within-pair distinction.
So a model that leans on audio alone plateaus and the visual branch must learn for the
fused accuracy to rise above ~50%: a known modality imbalance. Nothing here is tuned to
make one method win.
"""
import argparse
import codecs
import csv
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from .cremad import EMOTIONS
from .demo_cues import SAMPLE_RATE, synth_frame, synth_wave, write_clip
from .demo_food101 import FOOD_DEMO_CLASSES, write_food101_demo
from .demo_layouts import write_ave_demo, write_kinetics_sounds_demo, write_vggsound_demo
from .demo_mosei import write_mosei_demo
from .demo_ucf101 import UCF_DEMO_CLASSES, write_ucf101_demo
from .demo_voxceleb import write_voxceleb_demo
from .splits import stratified_split, write_split

SENTENCES = ["IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI"]
LEVELS = ["LO", "MD", "HI", "XX"]


def clip_names(clips_per_class: int):
    """Unique `ActorID_Sentence_Emotion_Level` names, clips_per_class per emotion."""
    names = []
    for emotion_index, emotion in enumerate(EMOTIONS):
        for i in range(clips_per_class):
            actor = 1001 + i // len(SENTENCES)
            sentence = SENTENCES[i % len(SENTENCES)]
            level = LEVELS[(i + emotion_index) % len(LEVELS)]
            names.append((f"{actor}_{sentence}_{emotion}_{level}", emotion_index))
    return names


def write_demo(out: Path, clips_per_class: int = 30, seed: int = 0, layout: str = "folder",
               frames_per_clip: int = 3, image_size=96, test_fraction: float = 0.2) -> Path:
    """Write the tree under `out` and return it. Same seed, same bytes. image_size: side or (height, width)."""
    out = Path(out)
    (out / "AudioWAV").mkdir(parents=True, exist_ok=True)
    frames_root = out / ("Image-01-FPS" if layout == "folder" else "image")
    frames_root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labelled = {}
    for clip, label in clip_names(clips_per_class):
        labelled[clip] = label
        soundfile.write(out / "AudioWAV" / f"{clip}.wav", synth_wave(label, rng), SAMPLE_RATE, subtype="PCM_16")
        if layout == "folder":
            (frames_root / clip).mkdir(exist_ok=True)
            for j in range(frames_per_clip):
                Image.fromarray(synth_frame(label, image_size, rng)).save(frames_root / clip / f"{j + 1:05d}.jpg", quality=90)
        else:
            Image.fromarray(synth_frame(label, image_size, rng)).save(frames_root / f"{clip}.jpg", quality=90)
    train, test = stratified_split(labelled, test_fraction=test_fraction, seed=seed)
    write_split(out / "train.csv", train, EMOTIONS)
    write_split(out / "test.csv", test, EMOTIONS)
    # Real class lists sometimes start with a UTF-8 BOM; the demo's does too, so that path is exercised.
    with open(out / "stat.csv", "w", encoding="utf-8") as fh:
        fh.write(codecs.BOM_UTF8.decode("utf-8") + "\n".join(EMOTIONS) + "\n")
    return out


def write_ssw60_demo(out: Path, clips_per_class: int = 8, seed: int = 0, frames_per_clip: int = 3,
                     image_size=64, test_fraction: float = 0.25, n_classes: int = 6) -> Path:
    """The same cues in SSW60's layout: video_ml.csv (official columns), audio/<id>.wav, frames/<id>/*.jpg.
    Labels are class numbers; every 7th clip is marked reliable_audio=0."""
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for label in range(n_classes):
        n_test = max(1, round(clips_per_class * test_fraction))
        for i in range(clips_per_class):
            asset = f"{100000 + label * 1000 + i}"
            write_clip(out / "audio" / f"{asset}.wav", out / "frames" / asset, label, rng, frames_per_clip, image_size)
            rows.append([asset, label, "test" if i < n_test else "train", 25, 250, 10.0, int(len(rows) % 7 != 6)])
    with open(out / "video_ml.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["asset_id", "label", "split", "fps", "frame_count", "duration_seconds", "reliable_audio"])
        writer.writerows(rows)
    return out


# --dataset -> (default folder, writer of the layout with (out, clips_per_class, seed, frames_per_clip, image_size))
LAYOUTS = {"ssw60": ("demo_data/SSW60", write_ssw60_demo, "SSW60"),
           "kinetics_sounds": ("demo_data/KineticsSounds", write_kinetics_sounds_demo, "Kinetics-Sounds"),
           "ave": ("demo_data/AVE", write_ave_demo, "AVE"),
           "vggsound": ("demo_data/VGGSound", write_vggsound_demo, "VGGSound")}


def yes_or_no(text: str) -> bool:
    word = str(text).strip().lower()
    if word not in ("true", "1", "yes", "false", "0", "no"):
        raise argparse.ArgumentTypeError(f"expected True/False/1/0/yes/no, got {text!r}")
    return word in ("true", "1", "yes")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["cremad", "voxceleb", "ucf101", "mosei", "food101", *LAYOUTS],
                        default="cremad", help="which layout to write")
    parser.add_argument("--out", default=None, help="where to write the tree (default demo_data/<dataset>)")
    parser.add_argument("--clips_per_class", type=int, default=None,
                        help="clips per class (default 30; SSW60 and UCF-101 8; UPMC-Food101 20); CMU-MOSEI: training "
                             "samples (default 120; valid a third, test half as many)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=["folder", "single"], default="folder",
                        help="CREMA-D only. folder: Image-01-FPS/<clip>/NNNNN.jpg; single: image/<clip>.jpg")
    parser.add_argument("--frames_per_clip", type=int, default=None,
                        help="frames per clip (default 3; Kinetics-Sounds, AVE and VGGSound 10: 1 a second of 10 s; "
                             "UCF-101 6 RGB frames, the release reads frame_00001-00006)")
    parser.add_argument("--image_size", type=int, default=None,
                        help="side of the written jpg frames (default 96 for CREMA-D, 32 for UCF-101 and "
                             "UPMC-Food101, 64 for the others)")
    parser.add_argument("--ucf_lists", type=yes_or_no, default=True,
                        metavar="BOOL", help="UCF-101 only: write ucfTrainTestlist/ (classInd.txt and the split 1 "
                                             "lists); without them the split comes from the video names")
    parser.add_argument("--test_fraction", type=float, default=0.2, help="CREMA-D and SSW60 only")
    args = parser.parse_args(argv)
    if args.dataset == "voxceleb":
        out = write_voxceleb_demo(Path(args.out or "demo_data/VoxCeleb"), seed=args.seed)
        print(f"wrote a demo speaker-verification set in the VoxCeleb layout to {out}")
        return
    if args.dataset == "mosei":
        n_train = args.clips_per_class or 120
        out = write_mosei_demo(Path(args.out or "demo_data/MOSEI"), n_train, args.seed)
        print(f"wrote demo CMU-MOSEI pickles (aligned and unaligned, {n_train} training samples) to {out}")
        return
    if args.dataset == "food101":
        per_class = args.clips_per_class or 20
        out = write_food101_demo(Path(args.out or "demo_data/Food101"), per_class, args.seed, args.image_size or 32)
        print(f"wrote {len(FOOD_DEMO_CLASSES) * per_class} demo image + title samples in the UPMC-Food101 layout, and "
              f"a tiny BERT in {out / 'text_model'} (pass --text_model {out / 'text_model'}), to {out}")
        return
    if args.dataset == "ucf101":
        per_class = args.clips_per_class or 8
        out = write_ucf101_demo(Path(args.out or "demo_data/UCF101"), per_class, args.seed, args.frames_per_clip or 6,
                                args.image_size or 32, lists=args.ucf_lists)
        print(f"wrote {len(UCF_DEMO_CLASSES) * per_class} demo videos (RGB + flow) in the UCF-101 layout to {out}")
        return
    per_class = args.clips_per_class or (8 if args.dataset == "ssw60" else 30)
    if args.dataset == "cremad":
        out = write_demo(Path(args.out or "demo_data/CREMA-D"), per_class, args.seed, args.layout,
                         args.frames_per_clip or 3, args.image_size or 96, args.test_fraction)
        print(f"wrote {6 * per_class} demo clips in the CREMA-D layout to {out}")
        return
    default_out, writer, title = LAYOUTS[args.dataset]
    options = {"test_fraction": args.test_fraction} if args.dataset == "ssw60" else {}
    frames = args.frames_per_clip or (3 if args.dataset == "ssw60" else 10)
    out = writer(Path(args.out or default_out), per_class, args.seed, frames, args.image_size or 64, **options)
    print(f"wrote {6 * per_class} demo clips in the {title} layout to {out}")


if __name__ == "__main__":
    main()
