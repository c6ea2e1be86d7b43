"""Prepare UCF-101 for main_UCF.py: every video under --video_root (<Class>/v_*.avi as distributed, or flat)
-> 1-fps RGB frames and TV-L1 optical flow in the layout dataset/ucf101.py reads:

    python scripts/prepare_ucf101.py --video_root /path/to/UCF-101 --out /path/to/UCF101 [--fps 1] [--workers 8]

OUT/rgb/<video>/frame_00001.jpg, OUT/flow/u/<video>/frame000001.jpg, OUT/flow/v/<video>/frame000001.jpg, and
OUT/prepared/<video>.done when a video is complete (details: dataset/ucf101_prepare.py). Flow is computed
between consecutive frames at the video's own rate (25 fps: about 180 pairs for the average clip); TV-L1 on a
CPU takes a good part of a second per 320x240 pair, so use --workers (one process per core).

Needs OpenCV's contrib build (cv2.optflow): the pinned opencv-contrib-python-headless in requirements.txt.
Resumable: videos with a done marker are skipped, unfinished ones redone. Videos that fail are listed at the
end and in OUT/failed.txt; exit status 1 then (2 for a usage error).
Copy classInd.txt and the trainlist/testlist files of the official split zip into OUT (or OUT/ucfTrainTestlist/)
to train on the official lists; without them main_UCF.py derives the same splits from the video names.
"""
import argparse
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dataset.errors import DataError, first_line_of  # noqa: E402
from dataset.preparation import find_videos  # noqa: E402
from dataset.ucf101_prepare import done_settings, one_thread, prepare_video, settings, tvl1_solver  # noqa: E402


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
        return value
    return parse


def prepare_videos(videos, out: Path, fps: float, bound: float, workers: int) -> list:
    """Run every video; returns the failures as 'name: reason' lines."""
    failed = []
    if min(workers, len(videos)) <= 1:
        for video in tqdm(videos, desc="rgb + tvl1 flow", dynamic_ncols=True):
            try:
                prepare_video(video, out, fps, bound)
            except Exception as err:  # report every failure at the end instead of stopping the batch
                failed.append(f"{video.name}: {first_line_of(err)}")
        return failed
    # spawned, not forked: OpenCV's and torch's thread pools do not survive a fork (the children can hang)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, initializer=one_thread, mp_context=spawn) as pool:
        futures = {pool.submit(prepare_video, video, out, fps, bound): video for video in videos}
        for future in tqdm(as_completed(futures), total=len(futures), desc="rgb + tvl1 flow", dynamic_ncols=True):
            if future.exception() is not None:
                failed.append(f"{futures[future].name}: {first_line_of(future.exception())}")
    return sorted(failed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video_root", required=True, help="folder of the UCF-101 videos (class subfolders or flat)")
    parser.add_argument("--out", required=True, help="data root to write rgb/, flow/u/, flow/v/ and prepared/ into")
    parser.add_argument("--fps", type=positive(float), default=1.0, help="RGB frames kept per second of video")
    parser.add_argument("--flow_bound", type=positive(float), default=20.0,
                        help="flow is clipped to +-this many pixels and mapped to 0..255 (the public sets': 20)")
    parser.add_argument("--workers", type=positive(int), default=1, help="videos prepared in parallel processes")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        tvl1_solver()
        videos = sorted(find_videos(Path(args.video_root)).values())
        if not videos:
            raise DataError(f"no videos under {args.video_root}. Point --video_root at the UCF-101 folder "
                            "(<Class>/v_*.avi)")
        wanted = settings(args.fps, args.flow_bound)
        todo = []
        for video in videos:
            done = done_settings(out, video.stem)
            if done is None:
                todo.append(video)
            elif done != wanted:
                raise DataError(f"{out} holds {video.stem} prepared with {done}, not {wanted}. Prepare with the same "
                                "--fps and --flow_bound, or into another --out")
    except DataError as err:
        print(f"error: {first_line_of(err)}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(videos)} videos, {len(videos) - len(todo)} already done")
    failed = prepare_videos(todo, out, args.fps, args.flow_bound, args.workers)
    report = out / "failed.txt"
    if failed:
        report.write_text("\n".join(failed) + "\n")
        print(f"{len(failed)} video(s) failed (listed in {report}):", *failed[:10], sep="\n  ")
        return 1
    report.unlink(missing_ok=True)
    print("all videos done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
