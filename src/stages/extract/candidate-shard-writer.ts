/**
 * Writes one candidate shard from inside the worker that parsed it. Pairs go into DuckDB as they
 * are found — page and text columns normalised into their own tables, so a pair costs three
 * appends instead of eleven — and leave the JavaScript heap at once. The Parquet file is written
 * once the cross-file duplicates are known: the rows named in `dropped` are left out.
 */
import type { DuckDBAppender, DuckDBConnection } from "@duckdb/node-api";
import { duckdbConnection, quoteLiteral } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import type { DetectedLanguage } from "./language.js";

export interface CandidatePage {
  pageUrl: string;
  recordOffset: number;
  warcFilename: string;
  warcOffset: number | null;
  crawlDate: string;
}

let tableCounter = 0;

export class CandidateShardWriter {
  private pageCount = 0;
  private textCount = 0;
  private rowCount = 0;
  private appending = true;

  private constructor(
    private readonly connection: DuckDBConnection,
    private readonly tables: { pairs: string; texts: string; pages: string; dropped: string },
    private readonly appenders: {
      pairs: DuckDBAppender;
      texts: DuckDBAppender;
      pages: DuckDBAppender;
    },
  ) {}

  static async open(): Promise<CandidateShardWriter> {
    const connection = await duckdbConnection();
    const suffix = `${process.pid}_${tableCounter++}`;
    const tables = {
      pairs: `pairs_${suffix}`,
      texts: `texts_${suffix}`,
      pages: `pages_${suffix}`,
      dropped: `dropped_${suffix}`,
    };
    await connection.run(
      `CREATE TABLE ${tables.pairs} (url VARCHAR, text_id INTEGER, page_id INTEGER)`,
    );
    await connection.run(
      `CREATE TABLE ${tables.texts} (text_id INTEGER, text VARCHAR, language VARCHAR, language_score FLOAT, language_tier VARCHAR)`,
    );
    await connection.run(
      `CREATE TABLE ${tables.pages} (page_id INTEGER, page_url VARCHAR, record_offset BIGINT, warc_filename VARCHAR, warc_offset BIGINT, crawl_date VARCHAR)`,
    );
    await connection.run(`CREATE TABLE ${tables.dropped} ("row" BIGINT)`);
    const appenders = {
      pairs: await connection.createAppender(tables.pairs),
      texts: await connection.createAppender(tables.texts),
      pages: await connection.createAppender(tables.pages),
    };
    return new CandidateShardWriter(connection, tables, appenders);
  }

  get rows(): number {
    return this.rowCount;
  }

  addPage(page: CandidatePage): number {
    const id = this.pageCount++;
    const appender = this.appenders.pages;
    appender.appendInteger(id);
    appender.appendVarchar(page.pageUrl);
    appender.appendBigInt(BigInt(page.recordOffset));
    appender.appendVarchar(page.warcFilename);
    if (page.warcOffset === null) appender.appendNull();
    else appender.appendBigInt(BigInt(page.warcOffset));
    appender.appendVarchar(page.crawlDate);
    appender.endRow();
    return id;
  }

  addText(text: string, language: DetectedLanguage): number {
    const id = this.textCount++;
    const appender = this.appenders.texts;
    appender.appendInteger(id);
    appender.appendVarchar(text);
    appender.appendVarchar(language.language);
    appender.appendFloat(language.score);
    appender.appendVarchar(language.tier);
    appender.endRow();
    return id;
  }

  /** Adds a pair; returns its row number, which `dropped` refers to. */
  addPair(url: string, textId: number, pageId: number): number {
    const appender = this.appenders.pairs;
    appender.appendVarchar(url);
    appender.appendInteger(textId);
    appender.appendInteger(pageId);
    appender.endRow();
    return this.rowCount++;
  }

  /** Writes the shard's Parquet file (atomically) without the dropped rows, in row order. */
  async write(
    storage: DatasetStorage,
    path: string,
    source: string,
    dropped: Uint32Array,
  ): Promise<void> {
    this.finishAppending();
    const droppedAppender = await this.connection.createAppender(this.tables.dropped);
    for (const row of dropped) {
      droppedAppender.appendBigInt(BigInt(row));
      droppedAppender.endRow();
    }
    droppedAppender.closeSync();
    const { pairs, texts, pages, dropped: droppedTable } = this.tables;
    const query = `SELECT p.url, t.text, t.language, t.language_score, t.language_tier, g.page_url,
        ${quoteLiteral(source)} AS source, g.record_offset, g.warc_filename, g.warc_offset, g.crawl_date
      FROM (SELECT rowid AS "row", * FROM ${pairs}) p
      JOIN ${texts} t USING (text_id)
      JOIN ${pages} g USING (page_id)
      WHERE p."row" NOT IN (SELECT "row" FROM ${droppedTable})
      ORDER BY p."row"`;
    await storage.writeAtomicWith(path, async (localPath) => {
      await this.connection.run(
        `COPY (${query}) TO ${quoteLiteral(localPath)} (FORMAT parquet, COMPRESSION zstd)`,
      );
    });
  }

  private finishAppending(): void {
    if (!this.appending) return;
    this.appending = false;
    for (const appender of Object.values(this.appenders)) appender.closeSync();
  }

  async close(): Promise<void> {
    this.finishAppending();
    for (const table of Object.values(this.tables))
      await this.connection.run(`DROP TABLE IF EXISTS ${table}`);
    this.connection.closeSync();
  }
}
