/**
 * Done markers: `_state/<stage>/<shard>.json`, written after a shard's outputs, so a marker
 * proves its outputs are complete. A stage skips a shard whose marker names the same input
 * digest and whose outputs still match it: the recorded size, and a checksum of the first and
 * last 64 KiB (Parquet's magic and footer, a tar's first and last members), which catches a file
 * replaced or overwritten at either end for two reads a file, whatever its size. Markers written
 * before the checksum existed are checked by size alone. Anything else is redone.
 */
import { createHash } from "node:crypto";
import { ENDS_CHECKSUM_SCHEME, endsChecksum } from "../io/file-info.js";
import { layout } from "../io/layout.js";
import type { DatasetStorage, FileInfo } from "../io/storage.js";

/** An output file as its marker records it. */
export interface MarkedOutput extends FileInfo {
  /** `ends-sha256:HEX` of the first and last 64 KiB; absent in older markers and missing files. */
  checksum?: string;
}

export interface DoneMarker {
  stage: string;
  shard: string;
  /** Digest of everything the output depends on: the inputs' identity and the stage's config. */
  inputDigest: string;
  outputs: MarkedOutput[];
  counts: Record<string, number>;
}

export class ShardState {
  private readonly redo: ReadonlySet<string>;
  private readonly redoOffered = new Set<string>();

  constructor(
    private readonly storage: DatasetStorage,
    readonly stage: string,
    /** `redo`: shards whose markers are disregarded, so they run again (`--redo`). */
    options: { redo?: readonly string[] } = {},
  ) {
    this.redo = new Set(options.redo ?? []);
  }

  /** The marker when the shard is done for exactly this input digest, else undefined. */
  async findDone(shard: string, inputDigest: string): Promise<DoneMarker | undefined> {
    if (this.redo.has(shard)) {
      this.redoOffered.add(shard);
      return undefined;
    }
    const marker = await this.read(shard);
    if (marker === undefined || marker.inputDigest !== inputDigest) return undefined;
    return (await this.damagedOutputs(marker)).length === 0 ? marker : undefined;
  }

  /** `redo` shards no findDone asked about: not in the stage's plan. */
  redoNotPlanned(): string[] {
    return [...this.redo].filter((shard) => !this.redoOffered.has(shard)).sort();
  }

  /** One line for each output that no longer matches the marker: missing, resized, rewritten. */
  async damagedOutputs(marker: DoneMarker): Promise<string[]> {
    const damaged: string[] = [];
    for (const output of marker.outputs) {
      const info = await this.storage.stat(output.path);
      if (info?.bytes !== output.bytes) {
        damaged.push(
          info === undefined
            ? `${output.path} is missing`
            : `${output.path} is ${info.bytes} bytes, its done marker says ${output.bytes}`,
        );
      } else if (
        output.checksum?.startsWith(ENDS_CHECKSUM_SCHEME) === true &&
        (await endsChecksum(this.storage, output.path, info.bytes)) !== output.checksum
      ) {
        damaged.push(`${output.path} has changed since its done marker was written (checksum)`);
      }
    }
    return damaged;
  }

  /** Outputs that come without a checksum get one (a caller's still-valid ones are kept). */
  async markDone(marker: Omit<DoneMarker, "stage">): Promise<void> {
    const outputs = await Promise.all(
      marker.outputs.map(async (output) =>
        output.checksum !== undefined || output.bytes < 0
          ? output
          : { ...output, checksum: await endsChecksum(this.storage, output.path, output.bytes) },
      ),
    );
    const full: DoneMarker = { stage: this.stage, ...marker, outputs };
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
