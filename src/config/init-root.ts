/** `clipcrawl init`: a dataset root with a clipcrawl.json of defaults and its provenance. */
import type { DatasetStorage } from "../io/storage.js";
import { VERSION } from "../version.js";
import { CONFIG_FILE, defaultConfig, readConfig, writeConfig } from "./config-file.js";
import type { ClipcrawlConfig } from "./schema.js";

export interface InitResult {
  configPath: string;
  created: boolean;
  config: ClipcrawlConfig;
}

/** Writes clipcrawl.json unless the root has one already (which is then validated). */
export async function initRoot(storage: DatasetStorage): Promise<InitResult> {
  const existing = await readConfig(storage);
  const configPath = storage.describe(CONFIG_FILE);
  if (existing !== undefined) return { configPath, created: false, config: existing };
  const config: ClipcrawlConfig = {
    ...defaultConfig(),
    provenance: { createdWith: `clipcrawl ${VERSION}`, createdAt: new Date().toISOString() },
  };
  await writeConfig(storage, config);
  return { configPath, created: true, config };
}
