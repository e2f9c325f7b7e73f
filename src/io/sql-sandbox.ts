/**
 * A DuckDB for SQL a user wrote (`subset --where`, and any later recipe or route that runs
 * user SQL): it reads the files it is given and writes into one scratch folder of its own, and
 * nothing else. DuckDB's table functions (`read_text`, `read_csv`, `glob`, `ATTACH`, http URLs)
 * would otherwise open any file the process can read, and an error message (a failed cast) would
 * show its contents; binding or preparing a query already opens the files it names. So external
 * access is turned off and the configuration locked on a fresh instance, before any user text is
 * parsed. The instance is not the thread's shared one (src/io/parquet.ts): that one stays open.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { duckdbModule, quoteLiteral } from "./parquet.js";

export interface SqlSandbox {
  connection: DuckDBConnection;
  /** A path in the scratch folder that the sandbox may write (COPY … TO). */
  scratchPath(name: string): string;
  /** Closes DuckDB and removes the scratch folder. */
  close(): Promise<void>;
}

export interface SqlSandboxOptions {
  /** The files the SQL may read (absolute paths, as the queries name them). */
  readable: readonly string[];
  /**
   * The folder the output goes to. The scratch folder (DuckDB's spill files and what COPY
   * writes) is made in it, or in its nearest existing parent when it does not exist yet: on the
   * output's file system, so the output can be renamed into place, and without creating the
   * output's folder for a query that fails.
   */
  outputFolder: string;
}

export async function openSqlSandbox(options: SqlSandboxOptions): Promise<SqlSandbox> {
  const scratch = await mkdtemp(join(await nearestFolder(options.outputFolder), ".clipcrawl-sql-"));
  let instance: DuckDBInstance | undefined;
  let connection: DuckDBConnection | undefined;
  try {
    const { DuckDBInstance } = duckdbModule();
    instance = await DuckDBInstance.create(":memory:");
    connection = await instance.connect();
    const list = (paths: readonly string[]) => `[${paths.map(quoteLiteral).join(", ")}]`;
    // The order matters: the allowed lists and the spill folder can only be set while external
    // access is on, and nothing can be changed once the configuration is locked.
    await connection.run(`SET temp_directory = ${quoteLiteral(join(scratch, "spill"))}`);
    await connection.run(`SET allowed_paths = ${list(options.readable)}`);
    await connection.run(`SET allowed_directories = ${list([`${scratch}/`])}`);
    // A query reads every footer again (the row count, the selection, the summary): parse once.
    await connection.run("SET parquet_metadata_cache = true");
    await connection.run("SET autoinstall_known_extensions = false");
    await connection.run("SET enable_external_access = false");
    await connection.run("SET lock_configuration = true");
  } catch (error) {
    connection?.closeSync();
    instance?.closeSync();
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }
  const opened = connection;
  const openedInstance = instance;
  return {
    connection: opened,
    scratchPath: (name) => join(scratch, name),
    close: async () => {
      opened.closeSync();
      openedInstance.closeSync();
      await rm(scratch, { recursive: true, force: true });
    },
  };
}

async function nearestFolder(path: string): Promise<string> {
  for (let folder = path; ; folder = dirname(folder)) {
    const info = await stat(folder).catch(() => undefined);
    if (info?.isDirectory() === true || dirname(folder) === folder) return folder;
  }
}
