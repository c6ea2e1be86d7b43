"""Prepare AVE for main_AVE.py from the dataset's videos (AVE_Dataset/AVE/<VideoID>.mp4), for each video of
trainSet.txt / valSet.txt / testSet.txt:

  --segment event (default; what PMR trains and tests on): the labelled event StartTime..EndTime of the
      video's list row, as PMR's data/AVE/video_preprocessing.py: audio_event/<VideoID>.wav (16 kHz mono,
      the event's samples) and frames_event/<VideoID>/<frame index>.jpg (the first frame of each second
      of the event, completed to 10 with seeded random frames of the event; see dataset/ave_event.py)
  --segment whole: the whole video: audio/<VideoID>.wav and frames/<VideoID>/00001.jpg, ... (--fps a second)

    python scripts/prepare_ave.py --data_root /path/to/AVE_Dataset --video_dir AVE

Train with the same --segment (main_AVE.py refuses folders prepared for the other). The lists are read from
the data root. Resumable: videos whose frame folder and wav both exist are skipped. Listed videos that are
absent go to <data_root>/missing.txt; failures, to failed.txt (exit 1).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.ave import SEGMENT_FOLDERS, check_preparable, event_segments, mark_prepared  # noqa: E402
from dataset.ave_event import prepare_event_clip  # noqa: E402
from dataset.errors import DataError, first_line_of  # noqa: E402
from dataset.preparation import find_videos, prepare_listed_clips  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", required=True, help="AVE folder holding trainSet.txt, valSet.txt, testSet.txt")
    parser.add_argument("--video_dir", default="AVE", help="folder of <VideoID>.mp4 (under the data root unless absolute)")
    parser.add_argument("--segment", choices=sorted(SEGMENT_FOLDERS), default="event",
                        help="event: the labelled event of each row (PMR's Audio-1004-SE / Image-01-FPS-SE); "
                             "whole: the whole video (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=1.0,
                        help="--segment whole: frames kept per second of video (PMR: 1; event frames are 1 a second)")
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    try:
        if args.segment == "event" and args.fps != 1.0:
            raise DataError("--segment event extracts PMR's 1 frame a second: drop --fps (it is for --segment whole)")
        segments, conflicting = event_segments(root)  # every listed video with its first row's segment
        audio_dir, frames_dir = SEGMENT_FOLDERS[args.segment]
        for name in (audio_dir, frames_dir):  # never add clips of one choice to a folder of the other
            if (root / name).is_dir():
                check_preparable(root / name, args.segment)
    except DataError as err:
        print(f"error: {first_line_of(err)}", file=sys.stderr)
        return 2
    if conflicting and args.segment == "event":
        print(f"note: {len(conflicting)} video(s) have rows with different segments (first: {conflicting[0]}); "
              "each gets its first row's, as the reader keeps a video's first row")
    for name in (audio_dir, frames_dir):
        mark_prepared(root / name, args.segment)
    video_dir = root / args.video_dir

    def event_job(clip, video, frames, wav):
        prepare_event_clip(video, frames, wav, *segments[clip], clip)
    return prepare_listed_clips(root, list(segments), find_videos(video_dir), args.fps, video_dir,
                                (frames_dir, audio_dir), event_job if args.segment == "event" else None)


if __name__ == "__main__":
    raise SystemExit(main())
