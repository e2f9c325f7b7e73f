/**
 * Writes an embedded shard in clip-retrieval's embedding-folder layout, each file atomically:
 * - `embeddings/img_emb/img_emb_NNNNN.npy`, `text_emb/text_emb_NNNNN.npy`: one L2-normalised
 *   row per embedded sample, float16 (as clip-retrieval) or float32;
 * - `embeddings/metadata/metadata_NNNNN.parquet`: the same rows in the same order, the columns
 *   of the image shard's parquet plus `similarity`, `caption_truncated`, `status`, one column
 *   per score head (`punsafe`, `pwatermark`, `ptoxic`, `AESTHETIC_SCORE`) and `score_error`;
 * - `embeddings/failures/failures_NNNNN.parquet`: the samples that could not be embedded, same
 *   columns, with `status` `failed_to_embed` and `error_message`.
 * Failures are kept out of the npy/metadata pair so that autofaiss and clip-back, which index
 * every row they find there, see only real embeddings; the two parquets together account for
 * every sample.
 *
 * The metadata rows are joined in DuckDB against the source rows (the image shard's parquet), so
 * every column keeps its type without the stage knowing what the columns are.
 */
import { randomBytes } from "node:crypto";
import { layout } from "../../io/layout.js";
import { encodeNpy } from "../../io/npy.js";
import { duckdbConnection, quoteIdentifier, quoteLiteral } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { toFloat16Bits } from "../../models/float16.js";
import type { EmbedConfig } from "./config.js";
import type { EmbeddedShard, SampleOutcome } from "./embed-shard.js";

/** Columns the stage writes itself; a source column of the same name is replaced. */
const OWN_COLUMNS = [
  "key",
  "url",
  "caption",
  "similarity",
  "caption_truncated",
  "text_tower",
  "status",
  "error_message",
];

export interface EmbeddingShardFiles {
  imageEmbeddings: string;
  textEmbeddings: string;
  metadata: string;
  failures: string;
}

/**
 * `source` is a DuckDB relation holding one row per key (e.g. `read_parquet('…/00000.parquet')`)
 * whose other columns are carried to the output; undefined when there is none.
 */
export async function writeEmbeddingShard(
  storage: DatasetStorage,
  shard: string,
  embedded: EmbeddedShard,
  source: string | undefined,
  dtype: EmbedConfig["outputDtype"],
  scoreNames: readonly string[] = [],
): Promise<EmbeddingShardFiles> {
  const files: EmbeddingShardFiles = {
    imageEmbeddings: layout.imageEmbeddings(shard),
    textEmbeddings: layout.textEmbeddings(shard),
    metadata: layout.embeddingMetadata(shard),
    failures: layout.embeddingFailures(shard),
  };
  const rows = embedded.outcomes.filter((outcome) => outcome.status === "embedded");
  await storage.writeAtomic(
    files.imageEmbeddings,
    npyOf(rows, embedded.dimensions, "image", dtype),
  );
  await storage.writeAtomic(files.textEmbeddings, npyOf(rows, embedded.dimensions, "text", dtype));
  await writeMetadata(storage, files, embedded.outcomes, source, rows.length, scoreNames);
  return files;
}

function npyOf(
  rows: readonly SampleOutcome[],
  dimensions: number,
  side: "image" | "text",
  dtype: EmbedConfig["outputDtype"],
): Buffer {
  const data = new Float32Array(rows.length * dimensions);
  rows.forEach((row, index) => {
    data.set(row[side] as Float32Array, index * dimensions);
  });
  const shape = [rows.length, dimensions];
  return dtype === "float16"
    ? encodeNpy({ dtype: "<f2", shape, data: toFloat16Bits(data) })
    : encodeNpy({ dtype: "<f4", shape, data });
}

async function writeMetadata(
  storage: DatasetStorage,
  files: EmbeddingShardFiles,
  outcomes: readonly SampleOutcome[],
  source: string | undefined,
  embeddedRows: number,
  scoreNames: readonly string[],
): Promise<void> {
  const connection = await duckdbConnection();
  const table = `embed_outcomes_${randomBytes(6).toString("hex")}`;
  try {
    await connection.run(
      `CREATE TEMP TABLE ${table} (position INTEGER, key VARCHAR, caption VARCHAR, similarity DOUBLE, caption_truncated BOOLEAN, text_tower VARCHAR, status VARCHAR, error_message VARCHAR${scoreNames.map((name) => `, ${quoteIdentifier(name)} DOUBLE`).join("")}, score_error VARCHAR)`,
    );
    const appender = await connection.createAppender(table);
    outcomes.forEach((outcome, position) => {
      appender.appendInteger(position);
      appender.appendVarchar(outcome.key);
      appender.appendVarchar(outcome.caption);
      if (outcome.similarity === null) appender.appendNull();
      else appender.appendDouble(outcome.similarity);
      if (outcome.captionTruncated === null) appender.appendNull();
      else appender.appendBoolean(outcome.captionTruncated);
      if (outcome.textTower === null) appender.appendNull();
      else appender.appendVarchar(outcome.textTower);
      appender.appendVarchar(outcome.status);
      if (outcome.errorMessage === null) appender.appendNull();
      else appender.appendVarchar(outcome.errorMessage);
      for (const name of scoreNames) {
        const value = outcome.scores[name] ?? null;
        if (value === null) appender.appendNull();
        else appender.appendDouble(value);
      }
      if (outcome.scoreError === null) appender.appendNull();
      else appender.appendVarchar(outcome.scoreError);
      appender.endRow();
    });
    appender.closeSync();

    let carried: string[] = [];
    let hasUrl = false;
    if (source !== undefined) {
      const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`);
      const names = described.getRowObjects().map((row) => String(row.column_name));
      hasUrl = names.includes("url");
      carried = names.filter(
        (name) =>
          !OWN_COLUMNS.includes(name) && !scoreNames.includes(name) && name !== "score_error",
      );
    }
    const select = (where: string) => {
      const columns = [
        "o.key",
        hasUrl ? "CAST(d.url AS VARCHAR) AS url" : "CAST(NULL AS VARCHAR) AS url",
        "o.caption",
        "o.similarity",
        "o.caption_truncated",
        "o.text_tower",
        "o.status",
        "o.error_message",
        ...scoreNames.map((name) => `o.${quoteIdentifier(name)}`),
        "o.score_error",
        ...carried.map((name) => `d.${quoteIdentifier(name)}`),
      ];
      const join =
        source === undefined ? "" : ` LEFT JOIN ${source} d ON CAST(d.key AS VARCHAR) = o.key`;
      return `SELECT ${columns.join(", ")} FROM ${table} o${join} WHERE ${where} ORDER BY o.position`;
    };
    const copy = async (path: string, where: string) => {
      await storage.writeAtomicWith(path, async (localPath) => {
        await connection.run(
          `COPY (${select(where)}) TO ${quoteLiteral(localPath)} (FORMAT parquet, COMPRESSION snappy)`,
        );
      });
    };
    if (source !== undefined) {
      const check = await connection.runAndReadAll(
        `SELECT count(*) AS n FROM (${select("o.status = 'embedded'")})`,
      );
      const joined = Number(check.getRowObjects()[0]?.n ?? 0);
      if (joined !== embeddedRows) {
        throw new Error(
          `metadata join gave ${joined} rows for ${embeddedRows} embeddings (duplicate keys in the shard's parquet?)`,
        );
      }
    }
    await copy(files.metadata, "o.status = 'embedded'");
    await copy(files.failures, "o.status <> 'embedded'");
  } finally {
    await connection.run(`DROP TABLE IF EXISTS ${table}`);
    connection.closeSync();
  }
}
