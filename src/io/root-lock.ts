/**
 * A lock on a dataset root, held by one process at a time on whatever machine it runs, for work
 * that must not run twice at once on the same root (a removal, a compaction).
 *
 * - On a local disk it is a file created exclusively (`O_EXCL`) holding the holder's pid; a lock
 *   left by a process that no longer runs is taken over.
 * - On object storage nothing creates an object exclusively everywhere (a conditional PUT is
 *   recent on AWS and missing from several compatible stores), so a contender writes a claim of
 *   its own under `<path>/`, then lists the claims: with none but its own, it holds the lock;
 *   otherwise it deletes its claim and tries again after a random pause. Two contenders cannot
 *   both hold it: whichever lists second lists after the other's claim was written (S3 lists what
 *   was written before, strongly consistent since 2020), so it sees that claim and backs off.
 *   The holder renews its claim every RENEW_MS; a claim not renewed for STALE_MS (by the store's
 *   clock: its time is compared with the contender's own claim, so machines' clocks do not
 *   matter), or one of a process on this machine that no longer runs, is deleted by the next
 *   contender. A holder stalled past STALE_MS can therefore lose the lock: the bound is minutes.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { ClipcrawlError } from "../errors.js";
import { LocalStorage } from "./local-storage.js";
import type { DatasetStorage } from "./storage.js";

export interface RootLockOptions {
  /** How long to wait for a live holder before failing (0: fail at once). */
  waitMs: number;
  /** What holds such a lock, for the message: "remove or compact". */
  holderName: string;
  /** The error code when the lock is held by another. */
  code: string;
  /** Object storage: a claim not renewed for this long is taken over (default 3 minutes). */
  staleMs?: number;
}

/** A held lock's release. */
export type ReleaseLock = () => Promise<void>;

const POLL_MS = 100;
const RENEW_MS = 30_000;
const STALE_MS = 3 * 60_000;

interface Holder {
  pid: number;
  host?: string;
  since?: string;
}

export function acquireRootLock(
  storage: DatasetStorage,
  path: string,
  options: RootLockOptions,
): Promise<ReleaseLock> {
  return storage instanceof LocalStorage
    ? acquireFileLock(storage, path, options)
    : acquireClaimLock(storage, path, options);
}

async function acquireFileLock(
  storage: LocalStorage,
  lockPath: string,
  options: RootLockOptions,
): Promise<ReleaseLock> {
  const path = await storage.localPath(lockPath);
  await mkdir(dirname(path), { recursive: true });
  const deadline = Date.now() + options.waitMs;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, "wx");
      await handle.write(JSON.stringify({ pid: process.pid, since: new Date().toISOString() }));
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = parseHolder(await readFile(path, "utf8").catch(() => ""));
      // No pid yet: the holder is between creating the file and writing it.
      if ((holder === undefined || processRuns(holder.pid)) && Date.now() < deadline) {
        await sleep(POLL_MS);
        attempt--;
        continue;
      }
      if (holder !== undefined && processRuns(holder.pid)) throw heldError(holder, path, options);
      await rm(path, { force: true });
    }
  }
  throw new ClipcrawlError(options.code, `cannot take the lock ${path}`);
}

async function acquireClaimLock(
  storage: DatasetStorage,
  lockPath: string,
  options: RootLockOptions,
): Promise<ReleaseLock> {
  const claim = `${lockPath}/${Date.now().toString(36)}-${randomBytes(6).toString("hex")}.json`;
  const holder: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const deadline = Date.now() + options.waitMs;
  for (;;) {
    await storage.writeAtomic(claim, JSON.stringify(holder));
    const mine = await storage.stat(claim);
    let live: Holder | undefined;
    for (const name of await storage.list(lockPath)) {
      const other = `${lockPath}/${name}`;
      if (other === claim) continue;
      const now = mine?.modified ?? Date.now();
      const found = await liveClaim(storage, other, now, options.staleMs ?? STALE_MS);
      if (found !== undefined) live ??= found;
    }
    if (live === undefined) {
      return holdClaim(
        storage,
        claim,
        holder,
        Math.min(RENEW_MS, (options.staleMs ?? STALE_MS) / 3),
      );
    }
    await storage.remove(claim);
    if (Date.now() >= deadline) throw heldError(live, storage.describe(lockPath), options);
    await sleep(POLL_MS + Math.random() * 2 * POLL_MS);
  }
}

/** The claim's holder while it holds; a stale claim is deleted and undefined returned. */
async function liveClaim(
  storage: DatasetStorage,
  path: string,
  now: number,
  staleMs: number,
): Promise<Holder | undefined> {
  const info = await storage.stat(path);
  if (info === undefined) return undefined;
  const holder = parseHolder(await storage.readText(path).catch(() => ""));
  const gone =
    now - info.modified > staleMs ||
    (holder !== undefined &&
      holder.host === hostname() &&
      holder.pid !== process.pid &&
      !processRuns(holder.pid));
  if (!gone) return holder ?? { pid: 0 };
  await storage.remove(path);
  return undefined;
}

function holdClaim(
  storage: DatasetStorage,
  claim: string,
  holder: Holder,
  renewMs: number,
): ReleaseLock {
  const renewal = setInterval(() => {
    storage.writeAtomic(claim, JSON.stringify(holder)).catch(() => {
      // The next renewal tries again; a holder that cannot write loses the lock after STALE_MS.
    });
  }, renewMs);
  renewal.unref();
  return async () => {
    clearInterval(renewal);
    await storage.remove(claim);
  };
}

function heldError(holder: Holder, where: string, options: RootLockOptions): ClipcrawlError {
  const host = holder.host === undefined || holder.host === hostname() ? "" : ` on ${holder.host}`;
  return new ClipcrawlError(
    options.code,
    `another clipcrawl ${options.holderName} (process ${holder.pid}${host}) holds this root's lock (${where}); wait for it to finish`,
  );
}

function parseHolder(text: string): Holder | undefined {
  try {
    const parsed = JSON.parse(text) as { pid?: unknown; host?: unknown; since?: unknown };
    if (typeof parsed.pid !== "number") return undefined;
    return {
      pid: parsed.pid,
      ...(typeof parsed.host === "string" ? { host: parsed.host } : {}),
      ...(typeof parsed.since === "string" ? { since: parsed.since } : {}),
    };
  } catch {
    return undefined;
  }
}

function processRuns(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
