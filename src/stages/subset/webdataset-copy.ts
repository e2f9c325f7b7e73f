/**
 * `subset --webdataset DIR`: the selected samples copied out of the root's image tars into new
 * webdataset shards (`DIR/00000.tar`, …, `shardSize` samples each), nothing downloaded again.
 * Each sample's members (KEY.jpg, KEY.json, KEY.txt) are copied byte for byte with download's
 * tar writer; samples come in the order of the source shards (one pass over each tar), which a
 * webdataset loader shuffles anyway. A selected sample whose tar does not hold it (a root
 * downloaded as files or parquet, a damaged member) is counted as missing.
 */
import { createReadStream } from "node:fs";
import { open, readdir } from "node:fs/promises";
import { ClipcrawlError } from "../../errors.js";
import { layout, shardName } from "../../io/layout.js";
import { LocalStorage } from "../../io/local-storage.js";
import type { DatasetStorage } from "../../io/storage.js";
import { readTarEntries, splitSampleName } from "../../io/tar-reader.js";
import { TarWriter } from "../../io/tar-writer.js";

export interface WebdatasetCopy {
  folder: string;
  shards: number;
  samples: number;
  /** Selected samples no local tar held. */
  missing: number;
  bytes: number;
}

interface CopiedSample {
  key: string;
  members: { name: string; data: Buffer }[];
}

/**
 * `keysByShard`: the selected keys of each image shard (by shard name). `overwrite` allows a
 * folder that already holds tars (they are replaced; other files are left alone).
 */
export async function copyWebdataset(
  root: DatasetStorage,
  keysByShard: ReadonlyMap<string, ReadonlySet<string>>,
  folder: string,
  shardSize: number,
  overwrite: boolean,
  onSample: () => void = () => {},
): Promise<WebdatasetCopy> {
  const existing = (await readdir(folder).catch(() => [] as string[])).filter((name) =>
    name.endsWith(".tar"),
  );
  if (existing.length > 0 && !overwrite) {
    throw new ClipcrawlError(
      "CC_SUBSET_OUTPUT",
      `--webdataset: ${folder} already holds ${existing.length} tar files; choose an empty folder or pass --overwrite`,
    );
  }
  const out = new LocalStorage(folder);
  for (const name of existing) await out.remove(name);
  const selected = [...keysByShard.values()].reduce((sum, keys) => sum + keys.size, 0);
  const samples = selectedSamples(root, keysByShard)[Symbol.asyncIterator]();
  let copied = 0;
  let shards = 0;
  let bytes = 0;
  let pending = await samples.next();
  while (pending.done !== true) {
    const name = `${shardName(shards)}.tar`;
    await out.writeAtomicWith(name, async (localPath) => {
      const file = await open(localPath, "w");
      try {
        const tar = new TarWriter(file);
        for (let count = 0; count < shardSize && pending.done !== true; count++) {
          for (const member of (pending.value as CopiedSample).members) {
            await tar.add(member.name, member.data);
          }
          copied++;
          onSample();
          pending = await samples.next();
        }
        await tar.finish();
      } finally {
        await file.close();
      }
    });
    bytes += (await out.stat(name))?.bytes ?? 0;
    shards++;
  }
  return { folder, shards, samples: copied, missing: selected - copied, bytes };
}

/** The selected samples, tar by tar in shard order, each with all of its members. */
async function* selectedSamples(
  root: DatasetStorage,
  keysByShard: ReadonlyMap<string, ReadonlySet<string>>,
): AsyncGenerator<CopiedSample> {
  for (const shard of [...keysByShard.keys()].sort()) {
    const keys = keysByShard.get(shard) as ReadonlySet<string>;
    const tar = layout.imageTar(shard);
    if (keys.size === 0 || !(await root.exists(tar))) continue;
    let current: CopiedSample | undefined;
    for await (const entry of readTarEntries(createReadStream(await root.localPath(tar)))) {
      if (entry.kind === "damaged") continue;
      const { key } = splitSampleName(entry.name);
      if (current !== undefined && current.key !== key) {
        yield current;
        current = undefined;
      }
      if (!keys.has(key)) continue;
      current ??= { key, members: [] };
      current.members.push({ name: entry.name, data: entry.data });
    }
    if (current !== undefined) yield current;
  }
}
