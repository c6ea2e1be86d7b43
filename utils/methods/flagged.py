"""The training set as a resampling method gives it to the loader: a key (index, augmentation seed,
flag) yields the clip's items (x_1, ..., x_M, label) with its flag after them, e.g. which modalities a copy
trains without."""
from torch.utils.data import Dataset


class FlaggedSamples(Dataset):
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 3:
            index, seed, flag = key
            return (*self.dataset[(index, seed)], flag)
        return (*self.dataset[key], 0)

    def __getattr__(self, name):
        # labels, evaluation_view, ... of the wrapped dataset (guarded: unpickling in a worker looks up
        # attributes before `dataset` is set)
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
