"""Prepare VGGSound for main_VGG.py from downloaded videos, named <youtube id>_<start>.mp4 with the start
zero-padded to 6 digits (the distributed files: ---g-f_I2yQ_000001.mp4) or not (OGM-GE's lists:
---g-f_I2yQ_1.mp4), flat or in subfolders: for each clip of vggsound.csv, frames/<clip>/00001.jpg, ...
(OpenCV, --fps frames per second) and audio/<clip>.wav (PyAV, mono 16 kHz), <clip> = <id>_<6-digit start>.

    python scripts/prepare_vggsound.py --data_root /path/to/VGGSound --video_dir /path/to/vggsound/videos

Resumable: clips whose frame folder and wav both exist are skipped. Listed clips without a video (many
are gone from YouTube) go to <data_root>/missing.txt with their count; failures, to failed.txt (exit 1).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.errors import DataError, first_line_of  # noqa: E402
from dataset.preparation import find_videos, prepare_listed_clips  # noqa: E402
from dataset.vggsound import clip_name, read_vggsound_csv  # noqa: E402


def clip_of(stem: str) -> str:
    """A video's clip name: its start zero-padded to 6 digits (youtube ids may hold '_' themselves)."""
    youtube_id, _, start = stem.rpartition("_")
    return clip_name(youtube_id, start) if youtube_id and start.isdigit() else stem


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", required=True, help="VGGSound folder holding vggsound.csv")
    parser.add_argument("--csv", default="vggsound.csv", help="official list under the data root")
    parser.add_argument("--video_dir", required=True, help="folder of the videos (searched recursively)")
    parser.add_argument("--fps", type=float, default=1.0, help="frames kept per second of video (OGM-GE: 1)")
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    try:
        _, splits = read_vggsound_csv(root / args.csv)
    except DataError as err:
        print(f"error: {first_line_of(err)}", file=sys.stderr)
        return 2
    clips = [clip for split in ("train", "test") for clip, _ in splits[split]]
    videos = find_videos(Path(args.video_dir), clip_of)
    return prepare_listed_clips(root, clips, videos, args.fps, Path(args.video_dir))


if __name__ == "__main__":
    raise SystemExit(main())
