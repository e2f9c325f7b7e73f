/**
 * One input shard → one index segment: its rows' image and text vectors (from the embeddings
 * npy files, picked by key when a dataset shard says which rows) and their metadata in the
 * index's columns. Every mismatch between the files (a damaged npy, a row count that differs
 * from the metadata's, a dataset key with no embedding) fails the shard with one line.
 */
import { randomBytes } from "node:crypto";
import type { DuckDBConnection } from "@duckdb/node-api";
import { InputError } from "../../errors.js";
import { SEGMENT_COLUMNS, segmentColumnExpressions } from "../../formats/index/index-columns.js";
import { metadataValue } from "../../formats/index/metadata-columns.js";
import { encodeMetadataRows } from "../../formats/index/metadata-rows.js";
import { encodeSegmentVectors } from "../../formats/index/segment-vectors.js";
import { layout } from "../../io/layout.js";
import { decodeNpy, type NpyArray } from "../../io/npy.js";
import { quoteIdentifier, quoteLiteral } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { fromFloat16Bits } from "../../models/float16.js";
import type { PlannedIndexShard } from "./index-plan.js";

export interface IndexShardRows {
  shard: string;
  rows: number;
  dimensions: number;
  /** Row-major, L2-normalised as embed wrote them, in the segment's row order. */
  image: Float32Array;
  text: Float32Array;
  /** DuckDB temp table: the segment columns plus `position` (the row order). */
  table: string;
}

export async function readIndexShard(
  storage: DatasetStorage,
  connection: DuckDBConnection,
  shard: PlannedIndexShard,
): Promise<IndexShardRows> {
  const image = await readMatrix(storage, shard.imageVectors);
  const text = await readMatrix(storage, shard.textVectors);
  checkEmbeddingShapes(storage, shard, image, text);
  const table = `index_rows_${randomBytes(6).toString("hex")}`;
  try {
    const metadata = await parquetSource(storage, shard.metadata);
    checkMetadataRows(storage, shard, await count(connection, metadata.relation), image.rows);
    if (shard.dataset === undefined) {
      const columns = await columnNames(connection, storage, shard.metadata, metadata.relation);
      const expressions = segmentColumnExpressions(columns, "embeddings");
      await connection.run(
        `CREATE TEMP TABLE ${table} AS SELECT m.file_row_number AS position, m.file_row_number AS embedding_row, ${expressions.join(", ")} FROM ${metadata.relation} m`,
      );
    } else {
      const dataset = await parquetSource(storage, shard.dataset);
      const columns = await columnNames(connection, storage, shard.dataset, dataset.relation);
      if (!columns.has("key")) {
        throw new InputError(
          "CC_NOT_DATASET_SHARD",
          storage.describe(shard.dataset),
          "no column key: cannot find the rows' embeddings",
        );
      }
      const expressions = segmentColumnExpressions(columns, "dataset");
      const keyColumn = quoteIdentifier(columns.get("key") as string);
      await connection.run(
        `CREATE TEMP TABLE ${table} AS SELECT m.file_row_number AS position, e.embedding_row, ${expressions.join(", ")}
         FROM ${dataset.relation} m
         LEFT JOIN (SELECT CAST(key AS VARCHAR) AS key, any_value(file_row_number) AS embedding_row FROM ${metadata.relation} GROUP BY 1) e
         ON CAST(m.${keyColumn} AS VARCHAR) = e.key`,
      );
      const missing = await connection.runAndReadAll(
        `SELECT count(*) AS n, min(key) AS first FROM ${table} WHERE embedding_row IS NULL`,
      );
      const row = missing.getRowObjects()[0];
      if (Number(row?.n ?? 0) > 0) {
        throw new InputError(
          "CC_DATASET_KEY_NOT_EMBEDDED",
          storage.describe(shard.dataset),
          `${Number(row?.n)} keys (first: ${String(row?.first)}) have no row in ${shard.metadata}`,
        );
      }
    }
    const order = await connection.runAndReadAll(
      `SELECT embedding_row FROM ${table} ORDER BY position`,
    );
    const embeddingRows = order.getColumns()[0] ?? [];
    const rows = embeddingRows.length;
    const dimensions = image.dimensions;
    const pick = (matrix: Float32Array) => {
      if (shard.dataset === undefined) return matrix;
      const picked = new Float32Array(rows * dimensions);
      embeddingRows.forEach((value, row) => {
        const from = Number(value) * dimensions;
        picked.set(matrix.subarray(from, from + dimensions), row * dimensions);
      });
      return picked;
    };
    return {
      shard: shard.name,
      rows,
      dimensions,
      image: pick(image.data),
      text: pick(text.data),
      table,
    };
  } catch (error) {
    await connection.run(`DROP TABLE IF EXISTS ${table}`);
    throw error;
  }
}

/** An input shard's image and text embeddings are of one shape. */
export function checkEmbeddingShapes(
  storage: DatasetStorage,
  shard: PlannedIndexShard,
  image: { rows: number; dimensions: number },
  text: { rows: number; dimensions: number },
): void {
  if (image.rows !== text.rows || image.dimensions !== text.dimensions) {
    throw new InputError(
      "CC_EMBEDDINGS_MISMATCH",
      storage.describe(shard.textVectors),
      `shape [${text.rows}, ${text.dimensions}], the image embeddings are [${image.rows}, ${image.dimensions}]`,
    );
  }
}

/** An input shard's metadata has a row for each of its vectors. */
export function checkMetadataRows(
  storage: DatasetStorage,
  shard: PlannedIndexShard,
  metadataRows: number,
  vectorRows: number,
): void {
  if (metadataRows !== vectorRows) {
    throw new InputError(
      "CC_EMBEDDINGS_MISMATCH",
      storage.describe(shard.metadata),
      `${metadataRows} rows, ${shard.imageVectors} has ${vectorRows}: not the same samples`,
    );
  }
}

/** An input shard's vectors are as wide as the index's. */
export function checkIndexDimensions(
  storage: DatasetStorage,
  shard: PlannedIndexShard,
  dimensions: number,
  indexDimensions: number,
): void {
  if (dimensions !== indexDimensions) {
    throw new InputError(
      "CC_EMBEDDINGS_MISMATCH",
      storage.describe(shard.imageVectors),
      `${dimensions}-d embeddings, the index holds ${indexDimensions}-d`,
    );
  }
}

/** Rows of a Parquet input (from its footer); a missing file fails with its path. */
export async function parquetRowCount(
  storage: DatasetStorage,
  connection: DuckDBConnection,
  path: string,
): Promise<number> {
  return count(connection, (await parquetSource(storage, path)).relation);
}

/**
 * Writes the segment's files: metadata.parquet in row order, the same rows as metadata.rows (looked
 * up by id when serving), and the two float16 npy files.
 */
export async function writeSegment(
  storage: DatasetStorage,
  connection: DuckDBConnection,
  segment: string,
  rows: IndexShardRows,
): Promise<void> {
  const columns = SEGMENT_COLUMNS.map((column) => quoteIdentifier(column.name)).join(", ");
  await storage.writeAtomicWith(layout.indexSegmentMetadata(segment), async (localPath) => {
    await connection.run(
      `COPY (SELECT ${columns} FROM ${rows.table} ORDER BY position) TO ${quoteLiteral(localPath)} (FORMAT parquet, COMPRESSION snappy)`,
    );
  });
  const values = await connection.runAndReadAll(
    `SELECT ${columns} FROM ${rows.table} ORDER BY position`,
  );
  await storage.writeAtomic(
    layout.indexSegmentRows(segment),
    encodeMetadataRows(
      SEGMENT_COLUMNS.map((column) => column.name),
      "key",
      values.getRows().map((row) => row.map(metadataValue)),
    ),
  );
  await storage.writeAtomic(
    layout.indexSegmentVectors(segment, "image"),
    encodeSegmentVectors(rows.image, rows.dimensions),
  );
  await storage.writeAtomic(
    layout.indexSegmentVectors(segment, "text"),
    encodeSegmentVectors(rows.text, rows.dimensions),
  );
}

export async function releaseIndexShard(
  connection: DuckDBConnection,
  rows: IndexShardRows,
): Promise<void> {
  await connection.run(`DROP TABLE IF EXISTS ${rows.table}`);
}

async function readMatrix(
  storage: DatasetStorage,
  path: string,
): Promise<{ rows: number; dimensions: number; data: Float32Array }> {
  if (!(await storage.exists(path))) {
    throw new InputError("CC_MISSING_EMBEDDINGS", storage.describe(path), "file not found");
  }
  let array: NpyArray;
  try {
    array = decodeNpy(await storage.read(path));
  } catch (error) {
    throw new InputError("CC_BAD_EMBEDDINGS", storage.describe(path), (error as Error).message, {
      cause: error,
    });
  }
  if (array.shape.length !== 2 || (array.shape[1] as number) < 1) {
    throw new InputError(
      "CC_BAD_EMBEDDINGS",
      storage.describe(path),
      `shape [${array.shape.join(", ")}], expected [rows, dimensions]`,
    );
  }
  const [rows, dimensions] = array.shape as [number, number];
  const data =
    array.dtype === "<f2"
      ? fromFloat16Bits(array.data)
      : array.dtype === "<f4"
        ? array.data
        : Float32Array.from(array.data);
  return { rows, dimensions, data };
}

async function parquetSource(storage: DatasetStorage, path: string): Promise<{ relation: string }> {
  if (!(await storage.exists(path))) {
    throw new InputError("CC_MISSING_METADATA", storage.describe(path), "file not found");
  }
  const local = await storage.localPath(path);
  return { relation: `read_parquet(${quoteLiteral(local)}, file_row_number = true)` };
}

async function count(connection: DuckDBConnection, relation: string): Promise<number> {
  const reader = await connection.runAndReadAll(`SELECT count(*) AS n FROM ${relation}`);
  return Number(reader.getRowObjects()[0]?.n ?? 0);
}

/** Lower-case column name → its actual name. */
async function columnNames(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  path: string,
  relation: string,
): Promise<Map<string, string>> {
  try {
    const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${relation}`);
    return new Map(
      described
        .getRowObjects()
        .map((row) => String(row.column_name))
        .filter((name) => name !== "file_row_number")
        .map((name) => [name.toLowerCase(), name]),
    );
  } catch (error) {
    throw new InputError("CC_BAD_PARQUET", storage.describe(path), (error as Error).message, {
      cause: error,
    });
  }
}
