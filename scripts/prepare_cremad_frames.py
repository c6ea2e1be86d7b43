"""Extract CREMA-D frames: VideoFlash/<clip>.flv -> Image-01-FPS/<clip>/00001.jpg, ...

    python scripts/prepare_cremad_frames.py --data_root /path/to/CREMA-D [--fps 1]

Resumable: clips whose frame folder exists are skipped (folders appear only when complete).
Clips that fail to decode are listed at the end and in <out_dir>/failed.txt; exit status 1 then.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.preparation import prepare_all  # noqa: E402
from dataset.video import extract_frames  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", required=True, help="CREMA-D folder holding VideoFlash/")
    parser.add_argument("--video_dir", default="VideoFlash", help="video folder under the data root")
    parser.add_argument("--ext", default=".flv", help="video file suffix")
    parser.add_argument("--fps", type=float, default=1.0, help="frames kept per second of video")
    parser.add_argument("--out_dir", default=None, help="output folder under the data root (default Image-<fps>-FPS)")
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    videos = sorted((root / args.video_dir).glob(f"*{args.ext}"))
    if not videos:
        print(f"error: no *{args.ext} files in {root / args.video_dir}. Check --data_root / --video_dir / --ext",
              file=sys.stderr)
        return 2
    out_root = root / (args.out_dir or f"Image-{args.fps:02g}-FPS")
    out_root.mkdir(parents=True, exist_ok=True)
    print(f"writing to {out_root}")
    jobs = [(video.name, lambda v=video: extract_frames(v, out_root / v.stem, args.fps),
             lambda v=video: (out_root / v.stem).is_dir()) for video in videos]
    return 1 if prepare_all(jobs, out_root, "frames") else 0


if __name__ == "__main__":
    raise SystemExit(main())
