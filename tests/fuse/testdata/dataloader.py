"""Reads an image-shaped dataset from a directory with a PyTorch DataLoader.

Usage: dataloader.py ROOT WORKERS EPOCHS
Prints one line per sample and epoch: "<epoch> <relative path> <sha256>", then
"done <samples> <seconds>". The caller checks every digest against the source.
"""
import hashlib
import os
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset


class Files(Dataset):
    def __init__(self, root):
        self.root = root
        self.paths = sorted(
            os.path.relpath(os.path.join(d, f), root)
            for d, _, files in os.walk(root)
            for f in files
        )

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with open(os.path.join(self.root, self.paths[i]), "rb") as f:
            data = f.read()
        # What an image pipeline does with the bytes: a tensor of them.
        t = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return self.paths[i], hashlib.sha256(t.numpy().tobytes()).hexdigest()


def main():
    root, workers, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ds = Files(root)
    loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers)
    start = time.time()
    n = 0
    for epoch in range(epochs):
        for paths, digests in loader:
            for p, d in zip(paths, digests):
                print(epoch, p, d)
                n += 1
    print("done", n, round(time.time() - start, 3))


if __name__ == "__main__":
    main()
