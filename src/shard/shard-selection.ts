/**
 * Which of a stage's planned shards run: all of them, or only the ones a runner names (a job is
 * one shard). The plan itself never changes with the selection, so a shard's digest, and so its
 * output, is the same whether it runs alone or with every other shard.
 */
export class ShardSelection {
  private readonly seen = new Set<string>();

  private constructor(private readonly names: ReadonlySet<string> | undefined) {}

  /** `undefined` selects every planned shard. */
  static of(names: readonly string[] | undefined): ShardSelection {
    return new ShardSelection(names === undefined ? undefined : new Set(names));
  }

  get all(): boolean {
    return this.names === undefined;
  }

  /** True when the planned shard runs; remembers it, for `unplanned()`. */
  includes(name: string): boolean {
    if (this.names !== undefined && !this.names.has(name)) return false;
    this.seen.add(name);
    return true;
  }

  /** How many shards run out of `planned`. */
  count(planned: number): number {
    return this.names === undefined ? planned : this.names.size;
  }

  /** Named shards the plan did not hold (call after every planned shard was offered). */
  unplanned(): string[] {
    if (this.names === undefined) return [];
    return [...this.names].filter((name) => !this.seen.has(name)).sort();
  }
}

export function unplannedShardError(stage: string, planned: number): string {
  return `not among the ${planned} shards ${stage} planned (its input is missing)`;
}
