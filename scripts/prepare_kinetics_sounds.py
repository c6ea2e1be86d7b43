"""Prepare Kinetics-Sounds for main_KS.py from downloaded Kinetics-400 videos (named as Kinetics' files
are, <youtube id>_<start:06d>_<end:06d>.mp4, flat or in class or split folders): for each clip of the
lists, frames/<clip>/00001.jpg, ... (OpenCV, --fps frames per second) and audio/<clip>.wav (PyAV, mono
16 kHz), named as the list names the clip.

    python scripts/prepare_kinetics_sounds.py --data_root /path/to/KineticsSounds --video_dir /path/to/kinetics400

The lists are the data root's my_train.txt / my_test.txt, else the OGM-GE lists shipped in
data/KineticsSounds/. Their test clips are named <youtube id>_<start second> and are Kinetics-400 *test*
videos (dataset/kinetics_names.py says how that was found): a listed clip is matched to a video by its
exact name, else by (youtube id, start second); --mapping gives videos for clips named otherwise. The
script says how many listed clips of each list it found. Resumable: clips whose frame folder and wav both
exist are skipped. Listed clips without a video go to <data_root>/missing.txt; clips that fail, to
failed.txt (exit status 1 then).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.errors import DataError, first_line_of  # noqa: E402
from dataset.kinetics_names import match_videos, read_mapping  # noqa: E402
from dataset.kinetics_sounds import load_lists  # noqa: E402
from dataset.preparation import find_videos, prepare_listed_clips  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", required=True, help="where audio/ and frames/ are written")
    parser.add_argument("--video_dir", required=True, help="folder of the Kinetics videos (searched recursively)")
    parser.add_argument("--train_list", default=None, help="train list under the data root (default: as main_KS.py)")
    parser.add_argument("--test_list", default=None, help="test list under the data root (default: as main_KS.py)")
    parser.add_argument("--fps", type=float, default=1.0, help="frames kept per second of video (this line of work: 1)")
    parser.add_argument("--mapping", default=None,
                        help="csv of '<clip as listed>,<video path>' rows for listed clips whose videos are named otherwise")
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        train, test, _ = load_lists(root, args.train_list, args.test_list)
        mapping = read_mapping(Path(args.mapping)) if args.mapping else None
    except (DataError, OSError) as err:
        print(f"error: {first_line_of(err)}", file=sys.stderr)
        return 2
    videos = find_videos(Path(args.video_dir))
    found = {}
    for name, rows in (("train", train), ("test", test)):
        matched, counts = match_videos([clip for clip, _ in rows], videos, mapping)
        ways = ", ".join(f"{n} by {how}" for how, n in counts.items() if n)
        print(f"{name} list: found videos for {len(matched)} of its {len(rows)} clips" + (f" ({ways})" if ways else ""))
        found.update(matched)
    return prepare_listed_clips(root, [clip for clip, _ in train + test], found, args.fps, Path(args.video_dir))


if __name__ == "__main__":
    raise SystemExit(main())
