"""A few clips as a dataset, for methods' per-epoch passes in tests: int keys, or the (index,
augmentation seed) keys of training passes (the seed is ignored: the clips are fixed tensors)."""


class Clips:
    def __init__(self, audio, visual, labels):
        self.items = list(zip(audio, visual, labels))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, key):
        return self.items[key[0] if isinstance(key, tuple) else key]
