"""Prepare Kinetics-Sounds for main_KS.py from downloaded Kinetics videos (named as Kinetics'
files are, <youtube id>_<start>_<end>.mp4, flat or in class folders): for each clip of the lists,
frames/<clip>/00001.jpg, ... (OpenCV, --fps frames per second) and audio/<clip>.wav (PyAV, mono 16 kHz).

    python scripts/prepare_kinetics_sounds.py --data_root /path/to/KineticsSounds --video_dir /path/to/kinetics/videos

The lists are the data root's my_train.txt / my_test.txt, else the OGM-GE lists shipped in
data/KineticsSounds/. Resumable: clips whose frame folder and wav both exist are skipped. Listed clips
without a video go to <data_root>/missing.txt; clips that fail, to failed.txt (exit status 1 then).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.errors import DataError, first_line_of  # noqa: E402
from dataset.kinetics_sounds import load_lists  # noqa: E402
from dataset.preparation import find_videos, prepare_listed_clips  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", required=True, help="where audio/ and frames/ are written")
    parser.add_argument("--video_dir", required=True, help="folder of the Kinetics videos (searched recursively)")
    parser.add_argument("--train_list", default=None, help="train list under the data root (default: as main_KS.py)")
    parser.add_argument("--test_list", default=None, help="test list under the data root (default: as main_KS.py)")
    parser.add_argument("--fps", type=float, default=1.0, help="frames kept per second of video (this line of work: 1)")
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        train, test, _ = load_lists(root, args.train_list, args.test_list)
    except (DataError, OSError) as err:
        print(f"error: {first_line_of(err)}", file=sys.stderr)
        return 2
    videos = find_videos(Path(args.video_dir))
    return prepare_listed_clips(root, [clip for clip, _ in train + test], videos, args.fps, Path(args.video_dir))


if __name__ == "__main__":
    raise SystemExit(main())
