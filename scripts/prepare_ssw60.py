"""Prepare SSW60 for main_SSW.py: each video of video_ml.csv -> frames/<asset_id>/00001.jpg, ...
(OpenCV, --fps frames per second) and audio/<asset_id>.wav (PyAV: the AAC track, mono, 16 kHz).

    python scripts/prepare_ssw60.py --data_root /path/to/SSW60 --video_dir video_ml [--fps 1]

Resumable: clips whose frame folder and wav both exist are skipped (each appears only when
complete). Clips that fail are listed at the end and in <data_root>/failed.txt; exit status 1 then.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.errors import DataError, first_line_of  # noqa: E402
from dataset.preparation import prepare_all, prepare_video_clip  # noqa: E402
from dataset.ssw60 import read_video_list  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", required=True, help="SSW60 folder holding video_ml.csv")
    parser.add_argument("--csv", default="video_ml.csv")
    parser.add_argument("--video_dir", default="video_ml", help="folder of <asset_id>.mp4 under the data root")
    parser.add_argument("--ext", default=".mp4")
    parser.add_argument("--fps", type=float, default=1.0, help="frames kept per second of video")
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    try:
        _, splits = read_video_list(root / args.csv)
    except DataError as err:
        print(f"error: {first_line_of(err)}", file=sys.stderr)
        return 2
    (root / "frames").mkdir(exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    jobs = []
    for asset, _ in splits["train"] + splits["test"]:
        video, frames, wav = root / args.video_dir / f"{asset}{args.ext}", root / "frames" / asset, root / "audio" / f"{asset}.wav"
        jobs.append((video.name, lambda v=video, f=frames, w=wav: prepare_video_clip(v, f, w, args.fps),
                     lambda f=frames, w=wav: f.is_dir() and w.is_file()))
    return 1 if prepare_all(jobs, root, "frames + audio") else 0


if __name__ == "__main__":
    raise SystemExit(main())
