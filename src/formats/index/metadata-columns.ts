/**
 * The index's metadata held in memory, column by column, for lookups by id at query time:
 * numbers in typed arrays (NaN for NULL), text as one UTF-8 buffer with offsets, so a million
 * rows cost a few hundred MB and no per-row objects. Loaded from the segments' metadata.parquet
 * in id order through DuckDB, a chunk at a time.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { quoteIdentifier, quoteLiteral } from "../../io/parquet.js";
import type { IndexColumn, IndexColumnType } from "./index-columns.js";

/** A metadata value as JSON can carry it: a BIGINT past 2^53 comes back as its decimal string. */
export type MetadataValue = string | number | null;

/** Where ClipIndex reads a row's metadata by id: columns in memory, or rows on disk. */
export interface MetadataLookup {
  has(name: string): boolean;
  value(name: string, id: number): MetadataValue;
  /** The ids of the rows whose `key` is one of `keys`, ascending. */
  idsWithKeys(keys: ReadonlySet<string>): number[];
  close(): void;
}

/** A BIGINT as a metadata value: a number while it is exact, else its decimal string. */
export function bigintValue(value: bigint): MetadataValue {
  const asNumber = Number(value);
  return Number.isSafeInteger(asNumber) ? asNumber : value.toString();
}

/** A value DuckDB gives for a VARCHAR, BIGINT or DOUBLE column, as a metadata value. */
export function metadataValue(value: unknown): MetadataValue {
  if (value === null || value === undefined) return null;
  if (typeof value === "bigint") return bigintValue(value);
  if (typeof value === "number") return Number.isNaN(value) ? null : value;
  return String(value);
}

interface NumberColumn {
  type: "DOUBLE";
  values: Float64Array;
}

interface IntegerColumn {
  type: "BIGINT";
  values: BigInt64Array;
  present: Uint8Array;
}

interface TextColumn {
  type: "VARCHAR";
  bytes: Buffer;
  /** Row i is bytes[offsets[i], offsets[i + 1]); NULL rows have offsets[i] = −1 − start. */
  offsets: Float64Array;
}

type StoredColumn = NumberColumn | IntegerColumn | TextColumn;

export class MetadataColumns implements MetadataLookup {
  private constructor(
    readonly rows: number,
    private readonly columns: Map<string, StoredColumn>,
  ) {}

  /** Reads `columns` of the parquet files (in id order), which hold `rows` rows together. */
  static async load(
    connection: DuckDBConnection,
    files: readonly string[],
    columns: readonly IndexColumn[],
    rows: number,
  ): Promise<MetadataColumns> {
    const builders = columns.map((column) => new ColumnBuilder(column.type, rows));
    const selection = columns.map((column) => quoteIdentifier(column.name)).join(", ");
    for (const file of files) {
      const result = await connection.stream(
        `SELECT ${selection} FROM read_parquet(${quoteLiteral(file)})`,
      );
      for (;;) {
        const chunk = await result.fetchChunk();
        if (chunk === null || chunk.rowCount === 0) break;
        builders.forEach((builder, index) => {
          builder.append(chunk.getColumnValues(index) as unknown[]);
        });
      }
    }
    const stored = new Map<string, StoredColumn>();
    columns.forEach((column, index) => {
      const built = (builders[index] as ColumnBuilder).finish();
      if (built.length !== rows) {
        throw new Error(
          `index metadata has ${built.length} rows of ${column.name}, expected ${rows}`,
        );
      }
      stored.set(column.name, built.column);
    });
    return new MetadataColumns(rows, stored);
  }

  has(name: string): boolean {
    return this.columns.has(name);
  }

  get names(): string[] {
    return [...this.columns.keys()];
  }

  /** A numeric column as a Float64Array (NaN for NULL), for filters; undefined for text. */
  numbers(name: string): Float64Array | undefined {
    const column = this.columns.get(name);
    return column?.type === "DOUBLE" ? column.values : undefined;
  }

  value(name: string, id: number): MetadataValue {
    const column = this.columns.get(name);
    if (column === undefined) return null;
    switch (column.type) {
      case "DOUBLE": {
        const value = column.values[id] as number;
        return Number.isNaN(value) ? null : value;
      }
      case "BIGINT": {
        if (column.present[id] === 0) return null;
        return bigintValue(column.values[id] as bigint);
      }
      case "VARCHAR": {
        const start = column.offsets[id] as number;
        if (start < 0) return null;
        const next = column.offsets[id + 1] as number;
        return column.bytes.toString("utf8", start, next < 0 ? -1 - next : next);
      }
    }
  }

  /** The text of a VARCHAR column at `id` ("" for NULL): for filters on LANGUAGE. */
  text(name: string, id: number): string {
    const value = this.value(name, id);
    return typeof value === "string" ? value : "";
  }

  idsWithKeys(keys: ReadonlySet<string>): number[] {
    const ids: number[] = [];
    for (let id = 0; id < this.rows; id++) if (keys.has(this.text("key", id))) ids.push(id);
    return ids;
  }

  close(): void {}
}

class ColumnBuilder {
  private length = 0;
  private readonly numbers: Float64Array | undefined;
  private readonly integers: BigInt64Array | undefined;
  private readonly present: Uint8Array | undefined;
  private readonly offsets: Float64Array | undefined;
  private readonly parts: Buffer[] = [];
  private textBytes = 0;

  constructor(
    private readonly type: IndexColumnType,
    capacity: number,
  ) {
    if (type === "DOUBLE") this.numbers = new Float64Array(capacity);
    if (type === "BIGINT") {
      this.integers = new BigInt64Array(capacity);
      this.present = new Uint8Array(capacity);
    }
    if (type === "VARCHAR") this.offsets = new Float64Array(capacity + 1);
  }

  append(values: readonly unknown[]): void {
    for (const value of values) {
      const row = this.length++;
      if (this.numbers !== undefined) {
        this.numbers[row] = value === null || value === undefined ? Number.NaN : Number(value);
      } else if (this.integers !== undefined && this.present !== undefined) {
        if (value !== null && value !== undefined) {
          this.integers[row] = BigInt(value as bigint | number);
          this.present[row] = 1;
        }
      } else if (this.offsets !== undefined) {
        if (value === null || value === undefined) {
          this.offsets[row] = -1 - this.textBytes;
        } else {
          const bytes = Buffer.from(String(value), "utf8");
          this.offsets[row] = this.textBytes;
          this.parts.push(bytes);
          this.textBytes += bytes.length;
        }
      }
    }
  }

  finish(): { column: StoredColumn; length: number } {
    const length = this.length;
    switch (this.type) {
      case "DOUBLE":
        return { column: { type: "DOUBLE", values: this.numbers as Float64Array }, length };
      case "BIGINT":
        return {
          column: {
            type: "BIGINT",
            values: this.integers as BigInt64Array,
            present: this.present as Uint8Array,
          },
          length,
        };
      case "VARCHAR": {
        const offsets = this.offsets as Float64Array;
        offsets[length] = this.textBytes;
        return {
          column: { type: "VARCHAR", bytes: Buffer.concat(this.parts), offsets },
          length,
        };
      }
    }
  }
}
