/**
 * A tar's members as byte ranges, found by reading their headers only, so a tar can be rewritten
 * without some members by copying the others' bytes as they are: no decoding, no re-encoding.
 * That is only sure for plain archives (what download writes); anything else is read member by
 * member with readTarEntries.
 */
import { open } from "node:fs/promises";
import { ClipcrawlError } from "../errors.js";
import { BlockReader, withCopyBlocks } from "./copy-blocks.js";
import { isZeroBlock, parseTarHeader } from "./tar-reader.js";
import type { TarWriter } from "./tar-writer.js";

const BLOCK = 512;

export interface TarMemberRange {
  name: string;
  /** Where its header starts and where its padded data ends. */
  start: number;
  end: number;
}

/**
 * The members of the tar at `path`, when every header up to the end-of-archive block is a plain
 * file header with a valid checksum and every member is whole; undefined for anything else (long
 * names, pax headers, a damaged header, a member cut short, no end block).
 */
export async function readTarMemberRanges(path: string): Promise<TarMemberRange[] | undefined> {
  const handle = await open(path, "r");
  try {
    const size = (await handle.stat()).size;
    return await withCopyBlocks(1, async ([block]) => {
      const reader = new BlockReader(handle, size, block as Buffer);
      const members: TarMemberRange[] = [];
      let offset = 0;
      while (offset + BLOCK <= size) {
        const header = await reader.bytes(offset, BLOCK);
        if (isZeroBlock(header)) return members;
        const parsed = parseTarHeader(header);
        if (parsed === undefined || (parsed.type !== "0" && parsed.type !== "\u0000")) {
          return undefined;
        }
        const end = offset + BLOCK + Math.ceil(parsed.size / BLOCK) * BLOCK;
        if (end > size) return undefined;
        members.push({ name: parsed.name, start: offset, end });
        offset = end;
      }
      return undefined;
    });
  } finally {
    await handle.close();
  }
}

/** Appends the members of `ranges` (of the tar at `source`, in order) to `tar`, byte for byte. */
export async function copyTarRanges(
  source: string,
  ranges: readonly TarMemberRange[],
  tar: TarWriter,
): Promise<void> {
  // Runs of consecutive members, copied as one range each.
  const runs: [number, number][] = [];
  for (const { start, end } of ranges) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last[1] === start) last[1] = end;
    else runs.push([start, end]);
  }
  const input = await open(source, "r");
  try {
    const size = (await input.stat()).size;
    await withCopyBlocks(2, async ([block, staged]) => {
      const reader = new BlockReader(input, size, block as Buffer);
      const output = staged as Buffer;
      let fill = 0;
      for (const [start, end] of runs) {
        for (let position = start; position < end; ) {
          const piece = await reader.bytes(
            position,
            Math.min(output.length - fill, end - position),
          );
          if (piece.length === 0)
            throw new ClipcrawlError("CC_TAR", `${source}: the file ends early`);
          piece.copy(output, fill);
          fill += piece.length;
          position += piece.length;
          if (fill === output.length) {
            await tar.copyMembers(output);
            fill = 0;
          }
        }
      }
      if (fill > 0) await tar.copyMembers(output.subarray(0, fill));
    });
  } finally {
    await input.close();
  }
}
