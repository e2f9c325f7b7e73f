/**
 * Done markers: `_state/<stage>/<shard>.json`, written after a shard's outputs, so a marker
 * proves its outputs are complete. A stage skips a shard whose marker names the same input
 * digest and whose outputs are still there with the recorded sizes; anything else is redone.
 */
import { createHash } from "node:crypto";
import { layout } from "../io/layout.js";
import type { DatasetStorage, FileInfo } from "../io/storage.js";

export interface DoneMarker {
  stage: string;
  shard: string;
  /** Digest of everything the output depends on: the inputs' identity and the stage's config. */
  inputDigest: string;
  outputs: FileInfo[];
  counts: Record<string, number>;
}

export class ShardState {
  constructor(
    private readonly storage: DatasetStorage,
    readonly stage: string,
  ) {}

  /** The marker when the shard is done for exactly this input digest, else undefined. */
  async findDone(shard: string, inputDigest: string): Promise<DoneMarker | undefined> {
    const marker = await this.read(shard);
    if (marker === undefined || marker.inputDigest !== inputDigest) return undefined;
    for (const output of marker.outputs) {
      const info = await this.storage.stat(output.path);
      if (info?.bytes !== output.bytes) return undefined;
    }
    return marker;
  }

  async markDone(marker: Omit<DoneMarker, "stage">): Promise<void> {
    const full: DoneMarker = { stage: this.stage, ...marker };
    await this.storage.writeAtomic(
      layout.doneMarker(this.stage, marker.shard),
      `${JSON.stringify(full, null, 2)}\n`,
    );
  }

  async read(shard: string): Promise<DoneMarker | undefined> {
    const path = layout.doneMarker(this.stage, shard);
    if (!(await this.storage.exists(path))) return undefined;
    try {
      return JSON.parse(await this.storage.readText(path)) as DoneMarker;
    } catch {
      // A marker is written atomically, so an unreadable one was edited by hand: redo the shard.
      return undefined;
    }
  }

  async list(): Promise<DoneMarker[]> {
    const names = await this.storage.list(layout.stateFolder(this.stage));
    const markers = await Promise.all(
      names.filter((name) => name.endsWith(".json")).map((name) => this.read(name.slice(0, -5))),
    );
    return markers.filter((marker): marker is DoneMarker => marker !== undefined);
  }
}

/** A stable digest of a JSON-serialisable value (object keys sorted). */
export function digestOf(value: unknown): string {
  return createHash("sha256").update(stableJson(value)).digest("hex");
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${stableJson(item)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
