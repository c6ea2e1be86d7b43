"""Prepare VoxCeleb videos for main_Vox.py: for each <speaker>/<video>/<utt>.mp4 under --videos,
    <out>/wav/<speaker>/<video>/<utt>.wav            (PyAV: the audio track, mono, 16 kHz)
    <out>/faces/<speaker>/<video>/<utt>/00001.jpg    (--fps frames per second, face detected with MTCNN,
                                                      eyes levelled, square crop of --crop_size)
and, with --list, a train list of every finished utterance (<wav>,<faces dir>,<speaker>,<frame count>).

    pip install --no-deps facenet-pytorch==2.6.0          # the face detector (optional dependency)
    python scripts/prepare_voxceleb.py --videos /data/vox2/dev/mp4 --out data/VoxCeleb --list train_list.csv

Resumable: an utterance whose wav and face folder exist is skipped (each appears only when
complete). Frames where no face is found reuse the nearest earlier detection (clips are face
tracks); a clip with no face at all, or that cannot be decoded, is listed at the end and in
<out>/failed.txt, and the exit status is 1.
"""
import argparse
import csv
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.faces import MTCNNDetector, align_crop, faces_for_track  # noqa: E402
from dataset.preparation import prepare_all  # noqa: E402
from dataset.video import extract_audio, iter_frames, write_folder_atomically  # noqa: E402
from dataset.visual import list_frames  # noqa: E402


def write_face_crops(video: Path, out_dir: Path, detect, fps: float, crop_size: int, margin: float) -> int:
    frames = list(iter_frames(video, fps))
    if not frames:
        raise RuntimeError("no frame could be decoded")
    faces = faces_for_track([detect(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in frames])

    def fill(partial: Path) -> int:
        for i, (frame, face) in enumerate(zip(frames, faces), start=1):
            cv2.imwrite(str(partial / f"{i:05d}.jpg"), align_crop(frame, face, crop_size, margin),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
        return len(frames)
    return write_folder_atomically(out_dir, fill)


def prepare_utterance(video: Path, wav: Path, faces: Path, detect, args) -> None:
    if not wav.is_file():
        wav.parent.mkdir(parents=True, exist_ok=True)
        extract_audio(video, wav)
    if not faces.is_dir():
        faces.parent.mkdir(parents=True, exist_ok=True)
        write_face_crops(video, faces, detect, args.fps, args.crop_size, args.margin)


def write_train_list(path: Path, keys, out: Path) -> int:
    """Rows for every utterance whose wav and faces exist; returns how many."""
    rows = []
    for key in keys:
        wav, faces = out / "wav" / f"{key}.wav", out / "faces" / key
        if wav.is_file() and faces.is_dir():
            rows.append([f"{key}.wav", key, key.split("/")[0], len(list_frames(faces))])
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return len(rows)


def main(argv=None, detector=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", required=True, help="folder of <speaker>/<video>/<utt>.mp4")
    parser.add_argument("--out", required=True, help="gets wav/ and faces/ (the --audio_root / --visual_root of main_Vox)")
    parser.add_argument("--ext", default=".mp4")
    parser.add_argument("--fps", type=float, default=2.0, help="face crops per second of video")
    parser.add_argument("--crop_size", type=int, default=224, help="side of the saved square face crops")
    parser.add_argument("--margin", type=float, default=0.3, help="context around the detected box, as a fraction of it")
    parser.add_argument("--device", default="cpu", help="where MTCNN runs (cpu or cuda)")
    parser.add_argument("--list", default=None, help="write a train list of the finished utterances to <out>/<this>")
    args = parser.parse_args(argv)
    videos, out = Path(args.videos), Path(args.out)
    if not videos.is_dir():
        print(f"error: video folder not found: {videos}. Pass --videos /path/to/vox2/dev/mp4", file=sys.stderr)
        return 2
    keys = [p.relative_to(videos).with_suffix("").as_posix() for p in sorted(videos.rglob(f"*{args.ext}"))]
    if not keys:
        print(f"error: no *{args.ext} files under {videos}", file=sys.stderr)
        return 2
    try:
        detect = detector or MTCNNDetector(args.device)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for key in keys:
        video, wav, faces = videos / f"{key}{args.ext}", out / "wav" / f"{key}.wav", out / "faces" / key
        jobs.append((key, lambda v=video, w=wav, f=faces: prepare_utterance(v, w, f, detect, args),
                     lambda w=wav, f=faces: w.is_file() and f.is_dir()))
    failed = prepare_all(jobs, out, "wav + face crops")
    if args.list:
        n = write_train_list(out / args.list, keys, out)
        print(f"{out / args.list}: {n} utterances")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
