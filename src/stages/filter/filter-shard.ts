/**
 * One shard of `filter`, in DuckDB: the metadata parquet's rows are mapped onto the dataset's
 * columns (src/formats/laion-schema.ts), each row gets its drop reason or none (drop-rules.ts),
 * the reasons are counted, and the kept rows are written in their metadata order as
 * `dataset/NNNNN.parquet`. The samples embed could not embed (its failures parquet) are counted
 * as `failed_to_embed`.
 *
 * Rows are joined against the blocklist tables the connection holds; the `hash` column and the
 * URL domains come from clipcrawl's own functions (src/formats/sql-functions.ts), registered on
 * the connection.
 */
import { randomBytes } from "node:crypto";
import type { DuckDBConnection } from "@duckdb/node-api";
import { InputError } from "../../errors.js";
import { BLOCKLIST_TABLES, type Blocklists } from "../../formats/blocklists.js";
import {
  DATASET_COLUMNS,
  type DatasetColumnType,
  REQUIRED_METADATA_COLUMNS,
  SCORE_COLUMNS,
} from "../../formats/laion-schema.js";
import type { LanguageTier } from "../../formats/language-tier.js";
import { ROW_DROP_REASONS } from "../../formats/recipes/recipe-rules.js";
import { PAIR_HASH_FUNCTION, URL_DOMAINS_FUNCTION } from "../../formats/sql-functions.js";
import { quoteIdentifier, quoteLiteral } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import type { FilterConfig } from "./config.js";
import {
  DROP_REASONS,
  type DropReason,
  dropReasonExpression,
  LANGUAGE_TIERS,
  type RecipeRules,
} from "./drop-rules.js";

export interface FilterShardInput {
  /** Root-relative paths. */
  metadata: string;
  failures: string;
  /** Where the kept rows go (root-relative). */
  output: string;
}

/** The recipes' part of a shard's verdicts: their rules, and the rows they drop. */
export interface ShardRecipes {
  rules: RecipeRules;
  /** One code a metadata row (recipes/recipe-plan.ts' ROW_DROP_REASONS), when rules.rowDrops. */
  rowDrops?: Uint8Array;
}

export interface FilteredShard {
  /** Pairs the shard accounts for: embedded (metadata rows) and failed to embed. */
  samples: number;
  kept: number;
  dropped: number;
  droppedByReason: Record<DropReason, number>;
  keptByTier: Record<LanguageTier, number>;
  meanSimilarityKept: number | null;
}

export async function filterShard(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  input: FilterShardInput,
  config: FilterConfig,
  lists: Blocklists,
  recipes: ShardRecipes = { rules: {} },
): Promise<FilteredShard> {
  const suffix = randomBytes(6).toString("hex");
  const domainHits = `filter_domain_hits_${suffix}`;
  const decided = `filter_decided_${suffix}`;
  const rowDrops = `filter_recipe_drops_${suffix}`;
  try {
    const metadataPath = await storage.localPath(input.metadata);
    const source = `read_parquet(${quoteLiteral(metadataPath)}, file_row_number = true)`;
    const columns = await readable(storage, input.metadata, () => columnNames(connection, source));
    for (const required of REQUIRED_METADATA_COLUMNS) {
      if (!columns.has(required)) {
        throw new InputError(
          "CC_NOT_EMBEDDING_METADATA",
          storage.describe(input.metadata),
          `no column ${required}: not embed's metadata`,
        );
      }
    }
    // Domain hits first, from the url column alone, so the rows are read and stored once.
    if (lists.domain.entries.size > 0) {
      await readable(storage, input.metadata, () =>
        connection.run(
          `CREATE TEMP TABLE ${domainHits} AS ${domainHitsQuery(source, columns.get("url") as string)}`,
        ),
      );
    }
    let prepared = prepareRows(source, columns);
    if (recipes.rules.rowDrops === true) {
      await createRowDrops(connection, rowDrops, recipes.rowDrops ?? new Uint8Array(0));
      prepared = `SELECT p.*, d.reason AS recipe_drop FROM (${prepared}) p LEFT JOIN ${rowDrops} d ON p.row_index = d.row_index`;
    }
    await readable(storage, input.metadata, () =>
      connection.run(
        `CREATE TEMP TABLE ${decided} AS SELECT *, ${dropReasonExpression(config, lists, domainHits, recipes.rules)} AS drop_reason FROM (${prepared})`,
      ),
    );
    const counted = await countReasons(connection, decided);
    counted.droppedByReason.failed_to_embed = await countFailures(connection, storage, input);
    const dropped = Object.values(counted.droppedByReason).reduce((sum, count) => sum + count, 0);

    const kept = DATASET_COLUMNS.map((column) =>
      column.name === "hash"
        ? `${PAIR_HASH_FUNCTION}(URL, TEXT) AS hash`
        : quoteIdentifier(column.name),
    );
    await storage.writeAtomicWith(input.output, async (localPath) => {
      await connection.run(
        `COPY (SELECT ${kept.join(", ")} FROM ${decided} WHERE drop_reason IS NULL ORDER BY row_index) TO ${quoteLiteral(localPath)} (FORMAT parquet, COMPRESSION snappy)`,
      );
    });
    return { ...counted, samples: counted.kept + dropped, dropped };
  } finally {
    for (const table of [domainHits, decided, rowDrops]) {
      await connection.run(`DROP TABLE IF EXISTS ${table}`);
    }
  }
}

/** The rows the embedding recipes drop, with their reason, as a table of the connection. */
async function createRowDrops(
  connection: DuckDBConnection,
  table: string,
  codes: Uint8Array,
): Promise<void> {
  await connection.run(`CREATE TEMP TABLE ${table} (row_index BIGINT, reason VARCHAR)`);
  const appender = await connection.createAppender(table);
  codes.forEach((code, row) => {
    if (code === 0) return;
    appender.appendBigInt(BigInt(row));
    appender.appendVarchar(ROW_DROP_REASONS[code] ?? "");
    appender.endRow();
  });
  appender.closeSync();
}

/** The metadata's rows as the dataset's columns, plus `row_index` and `tier`. */
export function prepareRows(source: string, columns: ReadonlyMap<string, string>): string {
  const column = (name: string, type: DatasetColumnType) => {
    const actual = columns.get(name.toLowerCase());
    return actual === undefined
      ? `CAST(NULL AS ${type})`
      : `CAST(m.${quoteIdentifier(actual)} AS ${type})`;
  };
  const original = (side: "width" | "height") =>
    `coalesce(${column(`original_${side}`, "BIGINT")}, ${column(side, "BIGINT")})`;
  const language = column("language", "VARCHAR");
  const listedTier = column("language_tier", "VARCHAR");
  // Where extract's tier is missing (tars and folders from elsewhere), it follows from the code.
  const tier = `CASE WHEN ${listedTier} IN ('en', 'multi', 'nolang') THEN ${listedTier} WHEN ${language} = 'en' THEN 'en' WHEN coalesce(${language}, '') = '' THEN 'nolang' ELSE 'multi' END`;
  const selected: Record<string, string> = {
    URL: column("url", "VARCHAR"),
    TEXT: column("caption", "VARCHAR"),
    WIDTH: original("width"),
    HEIGHT: original("height"),
    similarity: column("similarity", "DOUBLE"),
    ...Object.fromEntries(SCORE_COLUMNS.map((score) => [score, column(score, "DOUBLE")])),
    LANGUAGE: language,
    key: column("key", "VARCHAR"),
    sha256: column("sha256", "VARCHAR"),
    page_url: column("page_url", "VARCHAR"),
    source: column("source", "VARCHAR"),
    // Matched against the digest blocklists; not dataset columns (LAION's schema has one hash).
    md5: column("md5", "VARCHAR"),
    sha1: column("sha1", "VARCHAR"),
  };
  const list = [
    "m.file_row_number AS row_index",
    ...Object.entries(selected).map(([name, value]) => `${value} AS ${quoteIdentifier(name)}`),
    `${tier} AS tier`,
  ];
  return `SELECT ${list.join(", ")} FROM ${source} m`;
}

/** Rows whose host, or a domain above it, is in the domain blocklist (one join, any list size). */
function domainHitsQuery(source: string, urlColumn: string): string {
  const { table, column } = BLOCKLIST_TABLES.domain;
  const domains = `${URL_DOMAINS_FUNCTION}(CAST(m.${quoteIdentifier(urlColumn)} AS VARCHAR))`;
  return `SELECT DISTINCT d.row_index
    FROM (SELECT m.file_row_number AS row_index, unnest(${domains}) AS domain FROM ${source} m) d
    JOIN ${table} b ON d.domain = b.${column}`;
}

async function countReasons(
  connection: DuckDBConnection,
  decided: string,
): Promise<Omit<FilteredShard, "samples" | "dropped">> {
  const droppedByReason = Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0])) as Record<
    DropReason,
    number
  >;
  const keptByTier = Object.fromEntries(LANGUAGE_TIERS.map((tier) => [tier, 0])) as Record<
    LanguageTier,
    number
  >;
  const reader = await connection.runAndReadAll(
    `SELECT drop_reason, tier, count(*) AS n, sum(similarity) AS similarity FROM ${decided} GROUP BY ALL`,
  );
  let kept = 0;
  let similarity = 0;
  for (const row of reader.getRowObjects()) {
    const count = Number(row.n);
    if (row.drop_reason === null) {
      kept += count;
      similarity += Number(row.similarity ?? 0);
      keptByTier[row.tier as LanguageTier] += count;
    } else {
      droppedByReason[row.drop_reason as DropReason] += count;
    }
  }
  return {
    kept,
    droppedByReason,
    keptByTier,
    meanSimilarityKept: kept === 0 ? null : similarity / kept,
  };
}

/** Embed's failures parquet; a root without one (embedded elsewhere) has no failures to count. */
async function countFailures(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  input: FilterShardInput,
): Promise<number> {
  if (!(await storage.exists(input.failures))) return 0;
  const path = quoteLiteral(await storage.localPath(input.failures));
  const reader = await readable(storage, input.failures, () =>
    connection.runAndReadAll(`SELECT count(*) AS n FROM read_parquet(${path})`),
  );
  return Number(reader.getRowObjects()[0]?.n ?? 0);
}

/** Lower-case name → name as written, of a relation's columns. */
export async function columnNames(
  connection: DuckDBConnection,
  relation: string,
): Promise<Map<string, string>> {
  const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${relation}`);
  const names = new Map<string, string>();
  for (const row of described.getRowObjects()) {
    const name = String(row.column_name);
    if (name !== "file_row_number") names.set(name.toLowerCase(), name);
  }
  return names;
}

/**
 * Runs a step that reads an input file; DuckDB's error (a damaged footer or page) becomes one
 * line naming the file, and the stage goes on with the other shards.
 */
async function readable<T>(
  storage: DatasetStorage,
  path: string,
  read: () => Promise<T>,
): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof InputError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    const where = storage.describe(path);
    // DuckDB's first line says what is wrong (its others quote the query); the path is ours.
    const firstLine = (message.split("\n").find((line) => line.trim() !== "") ?? message)
      .replaceAll(` '${await storage.localPath(path)}'`, "")
      .trim();
    throw new InputError("CC_BAD_PARQUET", where, `cannot read the parquet file: ${firstLine}`, {
      cause: error,
    });
  }
}
