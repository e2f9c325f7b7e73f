/**
 * Adding text to the end of a file of the root, for logs that only grow (the audit log, a
 * compaction's progress log). On a local disk it is an append, synced: the cost is the new text,
 * and a crash can cut off at most the last line, which the logs' readers skip. An object cannot
 * be appended to, so on object storage the whole object is read and written again with the text
 * added, atomically (the old object or the new one): the cost grows with the log, and two writers
 * at once would lose one's text, so a caller appends only under a lock it holds.
 */
import { mkdir, open } from "node:fs/promises";
import { dirname } from "node:path";
import { LocalStorage } from "./local-storage.js";
import type { DatasetStorage } from "./storage.js";

export async function appendToFile(
  storage: DatasetStorage,
  path: string,
  text: string,
): Promise<void> {
  if (storage instanceof LocalStorage) {
    const localPath = await storage.localPath(path);
    await mkdir(dirname(localPath), { recursive: true });
    const file = await open(localPath, "a");
    try {
      await file.write(text);
      await file.sync();
    } finally {
      await file.close();
    }
    return;
  }
  await storage.writeAtomic(path, `${await readTextIfAny(storage, path)}${text}`);
}

/** The file's text; "" when there is no such file. */
export async function readTextIfAny(storage: DatasetStorage, path: string): Promise<string> {
  try {
    return await storage.readText(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw error;
  }
}
