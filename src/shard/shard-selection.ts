/**
 * Which of a stage's planned shards run: all of them, or only the ones a runner names (a job is
 * one shard). The plan itself never changes with the selection, so a shard's digest, and so its
 * output, is the same whether it runs alone or with every other shard.
 */
export class ShardSelection {
  private constructor(private readonly names: ReadonlySet<string> | undefined) {}

  /** `undefined` selects every planned shard. */
  static of(names: readonly string[] | undefined): ShardSelection {
    return new ShardSelection(names === undefined ? undefined : new Set(names));
  }

  get all(): boolean {
    return this.names === undefined;
  }

  /** True when the planned shard runs. */
  includes(name: string): boolean {
    return this.names === undefined || this.names.has(name);
  }

  /** How many shards run out of `planned`. */
  count(planned: number): number {
    return this.names === undefined ? planned : this.names.size;
  }

  /** Named shards that are not among `planned` (every shard the plan holds). */
  missingFrom(planned: ReadonlySet<string>): string[] {
    if (this.names === undefined) return [];
    return [...this.names].filter((name) => !planned.has(name)).sort();
  }
}

export function unplannedShardError(stage: string, planned: number): string {
  return `not among the ${planned} shards ${stage} planned (its input is missing)`;
}

/**
 * Of the shards a call names, those whose input is there, sorted: what a stage plans for a call
 * of named shards without listing its input folder (the others are reported as unplanned).
 */
export async function namedShardsPresent(
  names: readonly string[],
  inputExists: (name: string) => Promise<boolean>,
): Promise<string[]> {
  const present: string[] = [];
  for (const name of [...new Set(names)].sort()) if (await inputExists(name)) present.push(name);
  return present;
}
