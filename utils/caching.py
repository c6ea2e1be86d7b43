"""Attach decode-once caches (dataset/cache.py) to a run's datasets; the main process
builds a missing cache while the others wait."""
from dataset.cache import FeatureCache, build_cache, cache_folder

from . import distributed


def attach_caches(data, args, source_name: str, show_progress: bool = True) -> list:
    """Build (once) and attach each split's cache. Returns lines for the log: a lossy cache says so."""
    if args.cache_dir is None:
        return []
    for split, dataset in (("train", data.train), ("val", getattr(data, "val", None)), ("test", data.test)):
        if dataset is None:
            continue
        signature = {**dataset.cache_signature(), "frame_short_side": args.cache_frame_size}
        folder = cache_folder(args.cache_dir, f"{source_name}-{split}", signature)
        if distributed.is_main_process() and not (folder / "meta.json").is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            build_cache(dataset, folder, args.cache_frame_size, args.num_workers, show_progress)
        distributed.barrier()
        dataset.cache = FeatureCache(folder)
    if args.cache_frame_size is None:
        return []
    return [f"note: --cache_frame_size {args.cache_frame_size}: the cache keeps frames downscaled to a short side of "
            f"{args.cache_frame_size} and float16 audio features, so results differ a little from the plain path's "
            "(leave the flag out for an exact cache)"]
