from .cremad import EMOTIONS, CremadDataset, load_splits, resolve_class_list, resolve_frames_dir
from .errors import DataError

__all__ = ["CremadDataset", "DataError", "EMOTIONS", "load_splits", "resolve_class_list", "resolve_frames_dir"]
