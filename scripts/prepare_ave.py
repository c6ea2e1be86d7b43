"""Prepare AVE for main_AVE.py from the dataset's videos (AVE_Dataset/AVE/<VideoID>.mp4): for each
video of trainSet.txt / valSet.txt / testSet.txt, frames/<VideoID>/00001.jpg, ... (OpenCV, --fps frames
per second) and audio/<VideoID>.wav (PyAV, mono 16 kHz).

    python scripts/prepare_ave.py --data_root /path/to/AVE_Dataset --video_dir AVE

The lists are read from the data root. Resumable: videos whose frame folder and wav both exist are
skipped. Listed videos that are absent go to <data_root>/missing.txt; failures, to failed.txt (exit 1).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.ave import read_ave_lists  # noqa: E402
from dataset.errors import DataError, first_line_of  # noqa: E402
from dataset.preparation import find_videos, prepare_listed_clips  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", required=True, help="AVE folder holding trainSet.txt, valSet.txt, testSet.txt")
    parser.add_argument("--video_dir", default="AVE", help="folder of <VideoID>.mp4 (under the data root unless absolute)")
    parser.add_argument("--fps", type=float, default=1.0, help="frames kept per second of video (PMR: 1)")
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    try:
        _, splits = read_ave_lists(root)
    except DataError as err:
        print(f"error: {first_line_of(err)}", file=sys.stderr)
        return 2
    video_dir = root / args.video_dir
    clips = [clip for split in ("train", "val", "test") for clip, _ in splits[split]]
    return prepare_listed_clips(root, clips, find_videos(video_dir), args.fps, video_dir)


if __name__ == "__main__":
    raise SystemExit(main())
