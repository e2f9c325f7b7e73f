/**
 * `--redo SHARD[,SHARD…]` of the shard stages (download, embed, filter): run the named shards
 * again even when their done markers match — the fix for an output damaged in a way its marker
 * cannot see. `--overwrite` redoes every shard.
 */
import { type Command, InvalidArgumentError } from "commander";
import { shardName } from "../io/layout.js";

export function addRedoOption(command: Command): Command {
  return command.option(
    "--redo <shards>",
    "redo these shards even when marked done: numbers or names, comma-separated or repeated (e.g. --redo 00002,7)",
    collectShards,
  );
}

/** `2`, `00002` and `2,5` all name shards; the result is sorted and without repeats. */
function collectShards(value: string, previous: string[] | undefined): string[] {
  const shards = new Set(previous ?? []);
  for (const part of value.split(",")) {
    const name = part.trim();
    if (!/^\d+$/.test(name)) {
      throw new InvalidArgumentError(`${JSON.stringify(part)} is not a shard number (e.g. 00002)`);
    }
    shards.add(shardName(Number(name)));
  }
  return [...shards].sort();
}
