"""A few clips as a dataset, for methods' per-epoch passes in tests: int keys, or the (index,
augmentation seed) keys of training passes (the seed is ignored: the clips are fixed tensors). Items are
(x_1, ..., x_M, label), one tensor per modality, as the datasets' are."""


class Clips:
    def __init__(self, *tensors_then_labels):
        self.items = list(zip(*tensors_then_labels))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, key):
        return self.items[key[0] if isinstance(key, tuple) else key]


def passes_over(model, batch_size: int = 4, names=("audio", "visual")):
    """A Method.forward_batches for tests, as the runner's: eval mode, no gradient, batches of this process's
    share of the keys (every N-th under torchrun); `names`: the clips' modalities, in order."""
    import torch
    from torch.utils.data import default_collate

    from utils import distributed

    def forward_batches(dataset, keys):
        mine = list(keys)[distributed.rank()::distributed.world_size()]
        model.eval()
        for start in range(0, len(mine), batch_size):
            *tensors, labels = default_collate([dataset[k] for k in mine[start:start + batch_size]])
            with torch.no_grad():
                yield model(dict(zip(names, tensors))), labels
    return forward_batches
