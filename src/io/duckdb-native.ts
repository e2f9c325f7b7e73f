/**
 * DuckDB through its native binding alone (@duckdb/node-bindings, the layer @duckdb/node-api is
 * written over), for a writer on the start-up path of a small command: node-api's hundred-odd
 * modules take longer to load than a small extract takes to run, the binding is one file and the
 * native library. Each thread has one database here, of one DuckDB thread, so that the Parquet
 * files it writes are the same bytes for the same rows on whichever thread writes them.
 */
import { createRequire } from "node:module";
import type { Appender, Connection, Database } from "@duckdb/node-bindings";

export type NativeDuckdb = typeof import("@duckdb/node-bindings");
export type { Appender, Connection };

let database: Promise<{ duckdb: NativeDuckdb; database: Database }> | undefined;

/** node-api's own dependency, at the version it pins, wherever npm placed it. */
function nativeDuckdb(): NativeDuckdb {
  const api = createRequire(import.meta.url).resolve("@duckdb/node-api");
  return createRequire(api)("@duckdb/node-bindings");
}

/**
 * A new connection to this thread's single-threaded in-memory database. The first call loads the
 * native library and starts opening the database before it returns: the open runs on a libuv
 * thread, and a caller that has other work to do can do it before awaiting the connection.
 */
export async function singleThreadedConnection(): Promise<{
  duckdb: NativeDuckdb;
  connection: Connection;
}> {
  database ??= openDatabase();
  const opened = await database;
  return { duckdb: opened.duckdb, connection: await opened.duckdb.connect(opened.database) };
}

async function openDatabase(): Promise<{ duckdb: NativeDuckdb; database: Database }> {
  const duckdb = nativeDuckdb();
  const config = duckdb.create_config();
  duckdb.set_config(config, "threads", "1");
  return { duckdb, database: await duckdb.open(":memory:", config) };
}
