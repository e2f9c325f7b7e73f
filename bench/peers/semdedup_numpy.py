"""SemDeDup in numpy, the peer of `npm run bench -- semdedup`: the same algorithm and choices as
clipcrawl's recipe (spherical k-means on a seeded sample from seeded initial rows, every row
assigned to its nearest centroid, then within each cluster the members ordered by cosine to the
centroid, lowest first, and a member removed when an earlier one has cosine above 1 - epsilon),
with numpy's BLAS for the products. Products are computed a block at a time, as clipcrawl does.

usage: semdedup_numpy.py EMBEDDING_DIR CLUSTERS SAMPLE ITERATIONS SEED EPSILON OUT.npy
Prints one JSON line: seconds, rows, removed, max_rss_mb. Writes the removed pool rows to OUT (float64, which every .npy reader takes).
"""
import glob
import json
import resource
import sys
import time

import numpy as np

BLOCK = 4096


def mulberry32(seed):
    state = seed & 0xFFFFFFFF

    def imul(a, b):
        return (a * b) & 0xFFFFFFFF

    def draw():
        nonlocal state
        state = (state + 0x6D2B79F5) & 0xFFFFFFFF
        t = imul(state ^ (state >> 15), 1 | state)
        t = ((t + imul(t ^ (t >> 7), 61 | t)) & 0xFFFFFFFF) ^ t
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296

    return draw


def sample_rows(total, size, draw):
    if size >= total:
        return np.arange(total)
    chosen, needed = [], size
    for row in range(total):
        if needed == 0:
            break
        if draw() * (total - row) < needed:
            chosen.append(row)
            needed -= 1
    return np.array(chosen)


def assign(x, centroids):
    cluster = np.empty(len(x), dtype=np.int64)
    similarity = np.empty(len(x), dtype=np.float32)
    for first in range(0, len(x), BLOCK):
        products = x[first : first + BLOCK] @ centroids.T
        cluster[first : first + BLOCK] = products.argmax(axis=1)
        similarity[first : first + BLOCK] = products.max(axis=1)
    return cluster, similarity


def main():
    folder, clusters, sample, iterations, seed, epsilon, out = sys.argv[1:]
    clusters, sample, iterations, seed, epsilon = (
        int(clusters), int(sample), int(iterations), int(seed), float(epsilon))
    files = sorted(glob.glob(f"{folder}/img_emb_*.npy"))
    started = time.perf_counter()
    pool = np.concatenate([np.load(path).astype(np.float32) for path in files])
    draw = mulberry32(seed)
    rows = sample_rows(len(pool), sample, draw)
    x = pool[rows]
    k = min(clusters, len(x))
    order = list(range(len(x)))
    for position in range(k):
        swap = position + int(draw() * (len(x) - position))
        order[position], order[swap] = order[swap], order[position]
    centroids = x[order[:k]].copy()
    previous = None
    for _ in range(iterations):
        assigned, _ = assign(x, centroids)
        if previous is not None and np.array_equal(previous, assigned):
            break
        sums = np.zeros((k, x.shape[1]), dtype=np.float64)
        np.add.at(sums, assigned, x)
        norms = np.linalg.norm(sums, axis=1)
        nonempty = norms > 0
        centroids[nonempty] = (sums[nonempty] / norms[nonempty, None]).astype(np.float32)
        previous = assigned
    cluster, similarity = assign(pool, centroids)
    removed = []
    by_cluster = np.argsort(cluster, kind="stable")
    bounds = np.searchsorted(cluster[by_cluster], np.arange(k + 1))
    for c in range(k):
        members = by_cluster[bounds[c] : bounds[c + 1]]
        if len(members) < 2:
            continue
        members = members[np.lexsort((members, similarity[members]))]
        reps = pool[members]
        worst = np.zeros(len(members), dtype=np.float32)
        for first in range(1, len(members), BLOCK):
            end = min(len(members), first + BLOCK)
            products = np.triu(reps[:end] @ reps[first:end].T, k=1 - first)
            worst[first:end] = products.max(axis=0)
        removed.extend(members[worst > 1 - epsilon].tolist())
    seconds = time.perf_counter() - started
    np.save(out, np.array(sorted(removed), dtype=np.float64))
    print(json.dumps({
        "seconds": seconds,
        "rows": int(len(pool)),
        "removed": len(removed),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


main()
