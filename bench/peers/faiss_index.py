"""The peer of `clipcrawl index`: faiss (Debian's python3-faiss) on the same vectors and queries,
with parameters comparable to clipcrawl's graph (HNSW, same M and efConstruction) and the IVF-PQ
indices autofaiss builds for LAION (IVF with 4·sqrt(n) lists rounded to a power of two, PQ64),
with and without exact re-ranking (RFlat).

usage: faiss_index.py EMB_DIR QUERIES.npy TRUTH.npy THREADS M EF_CONSTRUCTION WORK_DIR EF_SEARCHES
  EMB_DIR holds img_emb_*.npy (float16 or float32, what `clipcrawl index` reads);
  TRUTH.npy holds the exact top-10 ids of each query; EF_SEARCHES is the comma-separated list of
  efSearch values, the same grid clipcrawl's lists are measured at.
Prints one JSON object per line: {"engine", "params", "build_s", "bytes", "recall", "qps_call",
"qps_batch_1", "qps_batch_n"}.
"""
import glob
import json
import math
import os
import sys
import time

import faiss
import numpy as np


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(found[i, :10].tolist()) & set(truth[i, :10].tolist())) for i in range(len(truth)))
    return hits / (10 * len(truth))


def measure(index, queries: np.ndarray, truth: np.ndarray, threads: int) -> dict:
    faiss.omp_set_num_threads(1)
    started = time.perf_counter()
    found = np.empty((len(queries), 10), dtype=np.int64)
    for i in range(len(queries)):
        _, ids = index.search(queries[i : i + 1], 10)
        found[i] = ids[0]
    qps_call = len(queries) / (time.perf_counter() - started)
    started = time.perf_counter()
    index.search(queries, 10)
    qps_batch_1 = len(queries) / (time.perf_counter() - started)
    faiss.omp_set_num_threads(threads)
    started = time.perf_counter()
    index.search(queries, 10)
    qps_batch_n = len(queries) / (time.perf_counter() - started)
    return {
        "recall": recall_at_10(found, truth),
        "qps_call": qps_call,
        "qps_batch_1": qps_batch_1,
        "qps_batch_n": qps_batch_n,
    }


def size_of(index, work_dir: str) -> int:
    path = os.path.join(work_dir, "faiss.index")
    faiss.write_index(index, path)
    size = os.path.getsize(path)
    os.remove(path)
    return size


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def main() -> None:
    emb_dir, queries_path, truth_path = sys.argv[1:4]
    threads, m, ef_construction = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    work_dir = sys.argv[7]
    ef_searches = [int(value) for value in sys.argv[8].split(",")]
    vectors = np.concatenate(
        [np.load(path).astype(np.float32) for path in sorted(glob.glob(os.path.join(emb_dir, "img_emb_*.npy")))]
    )
    queries = np.load(queries_path).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.load(truth_path).astype(np.int64)
    count, dimensions = vectors.shape

    faiss.omp_set_num_threads(threads)
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dimensions, m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = ef_construction
    hnsw.add(vectors)
    build = time.perf_counter() - started
    size = size_of(hnsw, work_dir)
    for ef in ef_searches:
        hnsw.hnsw.efSearch = ef
        emit({"engine": "faiss HNSW", "params": f"M={m} efC={ef_construction} efSearch={ef}",
              "build_s": build, "bytes": size, **measure(hnsw, queries, truth, threads)})
    del hnsw

    lists = 2 ** round(math.log2(4 * math.sqrt(count)))
    sub_quantizers = 64 if dimensions % 64 == 0 else 32
    train = vectors[np.random.default_rng(0).permutation(count)[: min(count, 256 * lists, 200_000)]]
    faiss.omp_set_num_threads(threads)
    started = time.perf_counter()
    ivfpq = faiss.index_factory(dimensions, f"IVF{lists},PQ{sub_quantizers}", faiss.METRIC_INNER_PRODUCT)
    # Polysemous training (for Hamming pre-filtering, unused here) alone takes minutes.
    faiss.downcast_index(faiss.extract_index_ivf(ivfpq)).do_polysemous_training = False
    ivfpq.train(train)
    trained = time.perf_counter() - started
    # The re-ranking wrapper keeps the full vectors beside the codes; adding through it fills both.
    refined = faiss.IndexRefineFlat(ivfpq)
    started = time.perf_counter()
    refined.add(vectors)
    build = trained + time.perf_counter() - started
    size = size_of(ivfpq, work_dir)
    for nprobe in [8, 16, 32, 64, 128]:
        faiss.extract_index_ivf(ivfpq).nprobe = nprobe
        emit({"engine": "faiss IVF-PQ", "params": f"IVF{lists},PQ{sub_quantizers} nprobe={nprobe}",
              "build_s": build, "bytes": size, **measure(ivfpq, queries, truth, threads)})
    size = size_of(refined, work_dir)
    refined.k_factor = 10
    for nprobe in [8, 16, 32, 64, 128]:
        faiss.extract_index_ivf(ivfpq).nprobe = nprobe
        emit({"engine": "faiss IVF-PQ+RFlat", "params": f"IVF{lists},PQ{sub_quantizers},RFlat nprobe={nprobe} k_factor=10",
              "build_s": build, "bytes": size, **measure(refined, queries, truth, threads)})


main()
