/** Every row of download's `images/NNNNN.parquet` files in a root, shard after shard. */
import { LocalStorage } from "../../src/io/local-storage.js";
import { type CellValue, readParquet } from "../../src/io/parquet.js";

export async function imageRows(root: string): Promise<Record<string, CellValue>[]> {
  const storage = new LocalStorage(root);
  const names = (await storage.list("images")).filter((name) => /^\d{5}\.parquet$/.test(name));
  const rows: Record<string, CellValue>[] = [];
  for (const name of names.sort()) rows.push(...(await readParquet(storage, `images/${name}`)));
  return rows;
}
