"""An independent numpy implementation of clipcrawl's recipes, for test/filter-recipes.test.ts.

Reads a JSON spec (argv[1]): the pool's shards (an .npy path and the rows' key, caption,
language, tier, similarity), and the recipes with every parameter. Prints a JSON object: each
key's drop reason (null: kept), in the filter's reason order. Written from the published
definitions (DataComp arXiv 2304.14108, SemDeDup arXiv 2303.09540 / NeMo Curator), not from
clipcrawl's TypeScript: only the seeded choices (mulberry32, Algorithm S, Fisher-Yates) are
shared so that both make the same random picks.
"""
import json
import sys

import numpy as np


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


def spherical_kmeans(pool, clusters, sample, iterations, seed):
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
        assigned = np.argmax(x @ centroids.T, axis=1)
        if previous is not None and np.array_equal(previous, assigned):
            break
        for cluster in range(k):
            members = x[assigned == cluster]
            if len(members) == 0:
                continue
            total = members.astype(np.float64).sum(axis=0)
            norm = np.linalg.norm(total)
            if norm > 0:
                centroids[cluster] = (total / norm).astype(np.float32)
        previous = assigned
    products = pool @ centroids.T
    return centroids, np.argmax(products, axis=1), products.max(axis=1)


def semdedup(pool, assigned, similarity, epsilon):
    removed = np.zeros(len(pool), dtype=bool)
    for cluster in np.unique(assigned):
        members = np.where(assigned == cluster)[0]
        # lowest cosine to the centroid first, ties in pool order: that one is kept
        members = members[np.lexsort((members, similarity[members]))]
        reps = pool[members]
        sims = reps @ reps.T
        triu = np.triu(sims, k=1)
        m = triu.max(axis=0) if len(members) > 1 else np.zeros(1)
        removed[members[m > 1 - epsilon]] = True
    return removed


def main():
    spec = json.load(open(sys.argv[1]))
    rows = [row for shard in spec["shards"] for row in shard["rows"]]
    pool = np.concatenate(
        [np.load(shard["npy"]).astype(np.float32) for shard in spec["shards"]]
    )
    reasons = [None] * len(rows)

    def drop(index, reason):
        if reasons[index] is None:
            reasons[index] = reason

    recipes = spec["recipes"]
    text = recipes.get("text")
    if text:
        for i, row in enumerate(rows):
            caption = row["caption"]
            if text["minChars"] > 0 and len(caption) < text["minChars"]:
                drop(i, "text_too_short")
            if text["maxChars"] > 0 and len(caption) > text["maxChars"]:
                drop(i, "text_too_long")
            if text["minWords"] > 0 and len(caption.split()) < text["minWords"]:
                drop(i, "text_too_few_words")
            if text["languages"] != "any" and row["language"] not in text["languages"].split("+"):
                drop(i, "text_language")
    top = recipes.get("clip-score-top")
    if top:
        for tier in ["en", "multi", "nolang"]:
            members = [i for i, row in enumerate(rows) if row["tier"] == tier]
            if not members:
                continue
            scores = -np.sort(-np.array([rows[i]["similarity"] for i in members]))
            threshold = scores[min(int(len(scores) * top["percent"] / 100), len(scores) - 1)]
            for i in members:
                if rows[i]["similarity"] < threshold:
                    drop(i, f"below_top_percent_{tier}")
    clusters = recipes.get("image-clusters")
    if clusters:
        centroids, assigned, _ = spherical_kmeans(
            pool, clusters["clusters"], clusters["sample"], clusters["iterations"], clusters["seed"]
        )
        targets = np.load(clusters["targets"]).astype(np.float32)
        targets /= np.linalg.norm(targets, axis=1, keepdims=True)
        wanted = set(np.argmax(targets @ centroids.T, axis=1).tolist())
        for i in range(len(rows)):
            if int(assigned[i]) not in wanted:
                drop(i, "image_cluster_off_target")
    dedup = recipes.get("semdedup")
    if dedup:
        _, assigned, similarity = spherical_kmeans(
            pool, dedup["clusters"], dedup["sample"], dedup["iterations"], dedup["seed"]
        )
        removed = semdedup(pool, assigned, similarity, dedup["epsilon"])
        for i in np.where(removed)[0]:
            drop(int(i), "semantic_duplicate")
        # The test's data must not sit on the threshold, where float32 sums may differ.
        threshold = 1 - dedup["epsilon"]
        for cluster in np.unique(assigned):
            members = pool[assigned == cluster]
            sims = members @ members.T
            np.fill_diagonal(sims, 0)
            assert np.abs(sims - threshold).min() > 1e-4, "test data too close to 1 - epsilon"
    print(json.dumps({row["key"]: reasons[i] for i, row in enumerate(rows)}))


main()
