"""The peer of the compressed-tier engine evaluation: faiss IVF-PQ with autofaiss's number of lists
(4·sqrt(n) rounded to a power of two below 1M vectors, 16,384 below 10M, 65,536 above; an HNSW32
over the centroids from 1M, as autofaiss builds it) and the PQ code sizes given, its top
candidates re-ranked by exact inner product with the float16 vectors memory-mapped from the
embeddings files (as the compressed tier may do); and faiss HNSW (M, efConstruction given) as the
in-memory reference.

usage: faiss_compressed.py EMB_DIR QUERIES.npy TRUTH.npy THREADS CODE_SIZES CANDIDATES PROBES CACHE_DIR HNSW_M HNSW_EFC [LISTS]
  LISTS: comma-separated list counts to build instead of autofaiss's choice, each with every
  code size, or LISTS:CODE for that code only;
  CODE_SIZES: comma-separated PQ sub-quantiser counts (bytes per code), e.g. 64,128;
  CANDIDATES: comma-separated re-rank depths; PROBES: comma-separated nprobe values;
  CACHE_DIR: built IVF-PQ indices are kept there (with their build time) and reused;
  HNSW_M 0 skips HNSW.
Prints one JSON object per line: {"engine", "params", "build_s", "bytes_per_vector", "recall",
"qps"};
qps is one query per call on one thread, re-ranking included.
"""
import glob
import json
import math
import os
import sys
import tempfile
import time

import faiss
import numpy as np


def recall_at_10(found, truth) -> float:
    hits = sum(len(set(found[i][:10]) & set(truth[i, :10].tolist())) for i in range(len(truth)))
    return hits / (10 * len(truth))


def size_of(index) -> int:
    with tempfile.NamedTemporaryFile(suffix=".faiss") as file:
        faiss.write_index(index, file.name)
        return os.path.getsize(file.name)


def autofaiss_lists(count: int) -> int:
    """autofaiss's first choice of list count (get_optimal_nb_clusters)."""
    if count < 1_000_000:
        return 2 ** round(math.log2(4 * math.sqrt(count)))
    return 16_384 if count < 10_000_000 else 65_536


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def main() -> None:
    emb_dir, queries_path, truth_path = sys.argv[1:4]
    threads = int(sys.argv[4])
    code_sizes = [int(value) for value in sys.argv[5].split(",") if value]
    depths = [int(value) for value in sys.argv[6].split(",") if value]
    probes = [int(value) for value in sys.argv[7].split(",") if value]
    cache_dir = sys.argv[8]
    hnsw_m, hnsw_efc = int(sys.argv[9]), int(sys.argv[10])
    paths = sorted(glob.glob(os.path.join(emb_dir, "img_emb_*.npy")))
    # The float16 files stay memory-mapped: at 10M rows a float32 copy (20 GB) would not fit
    # beside faiss's index on a 24 GB machine, so rows are converted a file at a time.
    stored = [np.load(path, mmap_mode="r") for path in paths]
    queries = np.load(queries_path).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.load(truth_path).astype(np.int64)
    count, dimensions = sum(len(part) for part in stored), stored[0].shape[1]
    offsets = np.cumsum([0] + [len(part) for part in stored])

    def rows_of(ids):
        """The float32 rows of ascending global ids."""
        shard = np.searchsorted(offsets, ids, side="right") - 1
        return np.concatenate([stored[s][ids[shard == s] - offsets[s]] for s in np.unique(shard)]).astype(np.float32)

    def add_all(index) -> float:
        """Adds every row, a file at a time; returns the seconds spent in faiss's add."""
        seconds = 0.0
        for part in stored:
            rows = np.asarray(part, dtype=np.float32)
            started = time.perf_counter()
            index.add(rows)
            seconds += time.perf_counter() - started
        return seconds

    def rerank(query, ids):
        ids = ids[ids >= 0]
        shard = np.searchsorted(offsets, ids, side="right") - 1
        rows = np.empty((len(ids), dimensions), dtype=np.float32)
        for s in np.unique(shard):
            mine = shard == s
            rows[mine] = stored[s][ids[mine] - offsets[s]]
        return ids[np.argsort(-(rows @ query))[:10]].tolist()

    list_counts = [value for value in sys.argv[11].split(",") if value] if len(sys.argv) > 11 else []
    configurations = []
    for entry in list_counts or [str(autofaiss_lists(count))]:
        lists, _, code = entry.partition(":")
        configurations += [(int(lists), int(code))] if code else [(int(lists), size) for size in code_sizes]
    for lists, code_size in configurations:
        # faiss's own floor is 39 training points a list (it warns below); 200k suffice below that.
        train = rows_of(np.sort(np.random.default_rng(0).permutation(count)[: min(count, max(39 * lists, min(256 * lists, 200_000)))]))
        # autofaiss puts an HNSW over the centroids from 1M rows.
        coarse = f"IVF{lists}_HNSW32" if count >= 1_000_000 else f"IVF{lists}"
        key = f"{coarse},PQ{code_size}"
        cached = os.path.join(cache_dir, f"faiss-{key}.faiss")
        if os.path.exists(cached) and os.path.exists(cached + ".json"):
            ivfpq = faiss.read_index(cached)
            with open(cached + ".json") as file:
                build = json.load(file)["build_s"]
        else:
            faiss.omp_set_num_threads(threads)
            started = time.perf_counter()
            ivfpq = faiss.index_factory(dimensions, key, faiss.METRIC_INNER_PRODUCT)
            faiss.downcast_index(faiss.extract_index_ivf(ivfpq)).do_polysemous_training = False
            ivfpq.train(train)
            build = time.perf_counter() - started + add_all(ivfpq)
            faiss.write_index(ivfpq, cached)
            with open(cached + ".json", "w") as file:
                json.dump({"build_s": build, "load_average": os.getloadavg()}, file)
        size = size_of(ivfpq)
        faiss.omp_set_num_threads(1)
        for nprobe in probes:
            faiss.extract_index_ivf(ivfpq).nprobe = nprobe
            for candidates in depths:
                for query in queries[:100]:
                    rerank(query, ivfpq.search(query[None, :], candidates)[1][0])
                started = time.perf_counter()
                found = [rerank(query, ivfpq.search(query[None, :], candidates)[1][0]) for query in queries]
                qps = len(queries) / (time.perf_counter() - started)
                emit({"engine": "faiss IVF-PQ + f16 re-rank", "params": f"{key} nprobe={nprobe} R={candidates}",
                      "build_s": build, "bytes_per_vector": size / count, "recall": recall_at_10(found, truth), "qps": qps})
        del ivfpq

    if hnsw_m > 0:
        faiss.omp_set_num_threads(threads)
        hnsw = faiss.IndexHNSWFlat(dimensions, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = hnsw_efc
        build = add_all(hnsw)
        size = size_of(hnsw)
        faiss.omp_set_num_threads(1)
        for ef in [32, 64, 128]:
            hnsw.hnsw.efSearch = ef
            started = time.perf_counter()
            found = [hnsw.search(query[None, :], 10)[1][0].tolist() for query in queries]
            qps = len(queries) / (time.perf_counter() - started)
            emit({"engine": "faiss HNSW (in memory)", "params": f"M={hnsw_m} efC={hnsw_efc} efSearch={ef}",
                  "build_s": build, "bytes_per_vector": size / count, "recall": recall_at_10(found, truth), "qps": qps})


main()
