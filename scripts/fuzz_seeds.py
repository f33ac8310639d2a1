#!/usr/bin/env python3
"""Tiny valid dataset files for the fuzzers' seed corpora.

    scripts/fuzz_seeds.py DATA_DIR DATASET_CORPUS_DIR

DATA_DIR gets mnist/ (20 train and 10 test images, IDX, gzip) and
cifar-10/ (five 4-record batches); DATASET_CORPUS_DIR gets one seed per
file the dataset fuzzer replaces (its first byte picks the file, as in
tests/fuzz/fuzz_datasets.cc).
"""
import gzip
import os
import struct
import sys


def idx_images(count):
    pixels = bytes((i * 37 + j) % 256 for i in range(count) for j in range(28 * 28))
    return struct.pack(">IIII", 0x803, count, 28, 28) + pixels


def idx_labels(count):
    return struct.pack(">II", 0x801, count) + bytes(i % 10 for i in range(count))


def cifar_batch(records):
    out = bytearray()
    for r in range(records):
        out.append(r % 10)
        out += bytes((r * 11 + j) % 256 for j in range(3 * 32 * 32))
    return bytes(out)


def main():
    data, corpus = sys.argv[1], sys.argv[2]
    mnist = os.path.join(data, "mnist")
    cifar = os.path.join(data, "cifar-10")
    os.makedirs(mnist, exist_ok=True)
    os.makedirs(cifar, exist_ok=True)
    os.makedirs(corpus, exist_ok=True)
    for prefix, count in (("train", 20), ("t10k", 10)):
        for kind, payload in (("images-idx3-ubyte", idx_images(count)),
                              ("labels-idx1-ubyte", idx_labels(count))):
            with open(os.path.join(mnist, f"{prefix}-{kind}.gz"), "wb") as f:
                f.write(gzip.compress(payload, mtime=0))
    for b in range(1, 6):
        with open(os.path.join(cifar, f"data_batch_{b}.bin"), "wb") as f:
            f.write(cifar_batch(4))
    # The slots of fuzz_datasets.cc, in order.
    seeds = [idx_images(2), idx_labels(2), gzip.compress(idx_images(2), mtime=0),
             cifar_batch(2), gzip.compress(cifar_batch(2), mtime=0)]
    for slot, payload in enumerate(seeds):
        with open(os.path.join(corpus, f"slot{slot}"), "wb") as f:
            f.write(bytes([slot]) + payload)


if __name__ == "__main__":
    main()
