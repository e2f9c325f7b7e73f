/**
 * Near-duplicate groups: rows whose image embeddings are at least `threshold` cosine-similar are
 * joined, transitively (union-find), and a group is named by its smallest id. Pairs are found
 * with the graph itself (each row's nearest neighbours), not by comparing every pair; a row
 * added later searches the rows before it, so groups grow as shards are added without redoing
 * the earlier rows. The groups are stored as one parquet column, `dup_group`, in id order.
 */
import { duckdbConnection, quoteLiteral, writeParquet } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { DUPLICATE_GROUP_COLUMN } from "./index-columns.js";

export class DuplicateGroups {
  private parent: Uint32Array;
  private length: number;

  /** `previous`: each earlier row's group (its group's smallest id), as the last build left it. */
  constructor(previous: Uint32Array = new Uint32Array(0)) {
    this.length = previous.length;
    this.parent = new Uint32Array(Math.max(16, previous.length * 2));
    this.parent.set(previous);
  }

  /** Rows up to `rows` exist; new ones start alone. */
  grow(rows: number): void {
    if (rows > this.parent.length) {
      const bigger = new Uint32Array(Math.max(rows, this.parent.length * 2));
      bigger.set(this.parent.subarray(0, this.length));
      this.parent = bigger;
    }
    for (let id = this.length; id < rows; id++) this.parent[id] = id;
    this.length = Math.max(this.length, rows);
  }

  find(id: number): number {
    const parent = this.parent;
    let node = id;
    while (parent[node] !== node) {
      const next = parent[node] as number;
      parent[node] = parent[next] as number;
      node = next;
    }
    return node;
  }

  union(left: number, right: number): void {
    const a = this.find(left);
    const b = this.find(right);
    if (a === b) return;
    // The smaller id is the root, so a group's name is its smallest id.
    if (a < b) this.parent[b] = a;
    else this.parent[a] = b;
  }

  /** Every row's group id, and how many groups there are. */
  resolve(): { groups: Uint32Array; count: number } {
    const groups = new Uint32Array(this.length);
    let count = 0;
    for (let id = 0; id < this.length; id++) {
      const root = this.find(id);
      groups[id] = root;
      if (root === id) count++;
    }
    return { groups, count };
  }
}

export async function writeDuplicateGroups(
  storage: DatasetStorage,
  path: string,
  groups: Uint32Array,
): Promise<void> {
  await writeParquet(
    storage,
    path,
    [
      {
        name: DUPLICATE_GROUP_COLUMN.name,
        type: "BIGINT",
        value: (id: number) => groups[id] ?? id,
      },
    ],
    (function* () {
      for (let id = 0; id < groups.length; id++) yield id;
    })(),
  );
}

export async function readDuplicateGroups(
  storage: DatasetStorage,
  path: string,
  rows: number,
): Promise<Uint32Array> {
  const connection = await duckdbConnection();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT ${DUPLICATE_GROUP_COLUMN.name} FROM read_parquet(${quoteLiteral(await storage.localPath(path))})`,
    );
    const values = reader.getColumns()[0] ?? [];
    if (values.length !== rows) {
      throw new Error(`${storage.describe(path)} has ${values.length} rows, the index ${rows}`);
    }
    return Uint32Array.from(values, (value) => Number(value));
  } finally {
    connection.closeSync();
  }
}
