/**
 * `--s3-endpoint` and `--cache-dir`, options of the program that every command takes (before or
 * after its name). They set the environment variables that open-root.ts reads, so the worker
 * threads and processes a command starts see the same store and cache.
 */
import { resolve } from "node:path";
import type { Command } from "commander";

interface StorageFlags {
  s3Endpoint?: string;
  cacheDir?: string;
}

export function addStorageOptions(program: Command): void {
  program
    .option(
      "--s3-endpoint <url>",
      "the S3-compatible store of s3:// roots (MinIO, R2, Ceph RGW; path-style addressing); default: AWS_ENDPOINT_URL, else AWS",
    )
    .option(
      "--cache-dir <dir>",
      "where an s3:// root keeps local copies of the files DuckDB, usearch and thumbnails read (bounded by CLIPCRAWL_CACHE_BYTES, least recently used first out); default: CLIPCRAWL_CACHE_DIR, else <tmp>/clipcrawl-cache",
    )
    .hook("preAction", (command) => {
      const flags = command.opts<StorageFlags>();
      if (flags.s3Endpoint !== undefined) process.env.AWS_ENDPOINT_URL = flags.s3Endpoint;
      if (flags.cacheDir !== undefined) process.env.CLIPCRAWL_CACHE_DIR = resolve(flags.cacheDir);
    });
}
