/**
 * Which shards `filter` reads and the digest of everything each one's output depends on: the
 * metadata and failures parquets of `embeddings/` (their size and modification time, and embed's
 * own digest for the shard: reading every file on every re-run would cost more than a skip check
 * should), the filter config, and the blocklists' entries. Changing a threshold, editing a
 * blocklist, or re-embedding a shard redoes it. Output NNNNN = input NNNNN.
 */
import { InputError } from "../../errors.js";
import {
  BLOCKLIST_CONFIG_KEYS,
  type BlocklistConfig,
  type BlocklistKind,
} from "../../formats/blocklists.js";
import { fileIdentity } from "../../io/file-info.js";
import { layout } from "../../io/layout.js";
import type { DatasetStorage } from "../../io/storage.js";
import { namedShardsPresent } from "../../shard/shard-selection.js";
import { digestOf, ShardState } from "../../shard/shard-state.js";
import type { FilterConfig } from "./config.js";

/** Bump when the output of the same input and config changes, so finished shards are redone. */
export const FILTER_FORMAT_VERSION = 1;

const METADATA_SHARD = /^metadata_(\d{5})\.parquet$/;
const EMBED_STAGE = "embed";

export interface PlannedFilterShard {
  name: string;
  /** Root-relative paths of the inputs. */
  metadata: string;
  failures: string;
  digest: string;
}

/** What the shard's output depends on besides its inputs. */
export interface FilterIdentity {
  /** The config with the blocklist paths left out: the lists count by their entries. */
  rules: Omit<FilterConfig, keyof BlocklistConfig>;
  blocklists: Record<BlocklistKind, string>;
}

export function filterIdentity(
  config: FilterConfig,
  blocklists: Record<BlocklistKind, string>,
): FilterIdentity {
  const rules: Partial<FilterConfig> = { ...config };
  for (const key of Object.values(BLOCKLIST_CONFIG_KEYS)) delete rules[key];
  return { rules: rules as FilterIdentity["rules"], blocklists };
}

export async function planFilterShards(
  storage: DatasetStorage,
  identity: FilterIdentity,
  only?: readonly string[],
  /** What else a shard's verdicts depend on (the recipes' decisions over the whole pool). */
  recipeDigest?: (name: string) => string,
): Promise<PlannedFilterShard[]> {
  const folder = layout.embeddingMetadataFolder();
  // A call of named shards (a job) plans only those, so its cost does not grow with the run.
  const names =
    only === undefined
      ? (await storage.list(folder))
          .map((name) => METADATA_SHARD.exec(name)?.[1])
          .filter((name): name is string => name !== undefined)
      : await namedShardsPresent(only, (name) => storage.exists(layout.embeddingMetadata(name)));
  if (names.length === 0 && only === undefined) {
    throw new InputError(
      "CC_NO_EMBEDDING_SHARDS",
      storage.describe(folder),
      "no embedding shards (metadata_NNNNN.parquet); run clipcrawl embed first",
    );
  }
  const embeds = new ShardState(storage, EMBED_STAGE);
  const planned: PlannedFilterShard[] = [];
  for (const name of names) {
    const metadata = layout.embeddingMetadata(name);
    const failures = layout.embeddingFailures(name);
    const marker = await embeds.read(name);
    planned.push({
      name,
      metadata,
      failures,
      digest: digestOf({
        version: FILTER_FORMAT_VERSION,
        metadata: await fileIdentity(storage, metadata),
        failures: await fileIdentity(storage, failures),
        embed: marker?.inputDigest ?? null,
        ...identity,
        ...(recipeDigest === undefined ? {} : { recipes: recipeDigest(name) }),
      }),
    });
  }
  return planned;
}
