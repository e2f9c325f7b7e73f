/**
 * The run state file, `<root>/_state/run.json`: what the last `clipcrawl run` on this root was
 * doing — its inputs (so a re-run needs no arguments), the shards of each stage, which shards were
 * running and which failed, and why. Done markers stay the truth about what is finished; this file
 * adds what markers cannot say (running, failed, interrupted) for `clipcrawl status`.
 *
 * Written atomically, at most a few times a second, so a `kill -9` leaves the last state: a
 * "running" file whose process is gone reads as interrupted. The inputs (O(inputs): 80,000 WAT
 * paths for a crawl) go to `_state/run-inputs.json` once, when set, not with every rewrite of
 * run.json; a run.json of an older version still holds them itself.
 */
import { hostname } from "node:os";
import type { DatasetStorage } from "../io/storage.js";
import type { ShardOutcome } from "./stage-call.js";

export const RUN_STATE_FILE = "_state/run.json";
export const RUN_INPUTS_FILE = "_state/run-inputs.json";

export type RunStatus = "running" | "finished" | "failed" | "interrupted";

export interface RunningShard {
  stage: string;
  shard: string;
  since: string;
}

export interface FailedRunShard {
  stage: string;
  shard: string;
  error: string;
  at: string;
}

export interface RunState {
  mode: "local" | "distributed";
  status: RunStatus;
  host: string;
  pid: number;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
  /** The WAT inputs, expanded (files, URLs), in shard order. */
  inputs: string[];
  /** Shards per stage, once planned. */
  shards: Partial<Record<string, number>>;
  running: RunningShard[];
  failed: FailedRunShard[];
  /** For a distributed run: where its jobs are (no password). */
  queue: { url: string; prefix: string; runId: string } | null;
}

/** run.json as written: the inputs are in their own file (an older run.json holds them). */
type RunStateFile = Omit<RunState, "inputs"> & { inputs?: string[] };

export async function readRunState(storage: DatasetStorage): Promise<RunState | undefined> {
  if (!(await storage.exists(RUN_STATE_FILE))) return undefined;
  let state: RunStateFile;
  try {
    state = JSON.parse(await storage.readText(RUN_STATE_FILE)) as RunStateFile;
  } catch {
    return undefined;
  }
  return { ...state, inputs: state.inputs ?? (await readRunInputs(storage)) };
}

async function readRunInputs(storage: DatasetStorage): Promise<string[]> {
  if (!(await storage.exists(RUN_INPUTS_FILE))) return [];
  try {
    const { inputs } = JSON.parse(await storage.readText(RUN_INPUTS_FILE)) as { inputs?: unknown };
    return Array.isArray(inputs) ? inputs.filter((input) => typeof input === "string") : [];
  } catch {
    return [];
  }
}

/** Keeps the run state file up to date as a run goes. */
export class RunStateRecorder {
  private readonly state: Omit<RunState, "inputs">;
  /** Inputs set and not written yet; once written the recorder holds none. */
  private inputs: string[] | undefined;
  private writing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly storage: DatasetStorage,
    { inputs, ...init }: Pick<RunState, "mode" | "inputs" | "queue">,
  ) {
    const now = new Date().toISOString();
    this.inputs = inputs;
    this.state = {
      ...init,
      status: "running",
      host: hostname(),
      pid: process.pid,
      startedAt: now,
      updatedAt: now,
      finishedAt: null,
      shards: {},
      running: [],
      failed: [],
    };
  }

  get current(): Readonly<Omit<RunState, "inputs">> {
    return this.state;
  }

  setInputs(inputs: string[]): void {
    this.inputs = inputs;
    this.changed();
  }

  setShards(stage: string, count: number): void {
    this.state.shards[stage] = count;
    this.changed();
  }

  started(stage: string, shards: readonly string[]): void {
    const since = new Date().toISOString();
    for (const shard of shards) this.state.running.push({ stage, shard, since });
    // A retried shard is no longer failed.
    this.state.failed = this.state.failed.filter(
      (item) => !(item.stage === stage && shards.includes(item.shard)),
    );
    this.changed();
  }

  /** The shards of `stage` running now (a long call reports them as it goes). */
  setRunning(stage: string, shards: readonly string[]): void {
    const since = new Date().toISOString();
    const before = new Map(
      this.state.running.filter((item) => item.stage === stage).map((item) => [item.shard, item]),
    );
    this.state.running = [
      ...this.state.running.filter((item) => item.stage !== stage),
      ...shards.map((shard) => before.get(shard) ?? { stage, shard, since }),
    ];
    this.changed();
  }

  finished(stage: string, outcomes: readonly ShardOutcome[]): void {
    const done = new Set(outcomes.map((outcome) => outcome.shard));
    this.state.running = this.state.running.filter(
      (item) => !(item.stage === stage && done.has(item.shard)),
    );
    const at = new Date().toISOString();
    for (const outcome of outcomes) {
      if (!outcome.ok) {
        this.state.failed.push({
          stage,
          shard: outcome.shard,
          error: outcome.error ?? "failed",
          at,
        });
      }
    }
    this.changed();
  }

  failed(stage: string, shard: string, error: string): void {
    this.finished(stage, [{ shard, ok: false, error }]);
  }

  /** Writes the final state now. */
  async close(status: Exclude<RunStatus, "running">): Promise<void> {
    this.state.status = status;
    this.state.finishedAt = new Date().toISOString();
    this.state.running = [];
    await this.flush();
  }

  async flush(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.state.updatedAt = new Date().toISOString();
    const text = `${JSON.stringify(this.state, null, 2)}\n`;
    const inputs = this.inputs;
    // The inputs first: a run.json never names a run whose inputs are not written.
    // After a failed write the next one still goes: the chain must not stay rejected.
    this.writing = this.writing
      .catch(() => {})
      .then(async () => {
        if (inputs !== undefined) {
          await this.storage.writeAtomic(RUN_INPUTS_FILE, `${JSON.stringify({ inputs })}\n`);
          if (this.inputs === inputs) this.inputs = undefined;
        }
        await this.storage.writeAtomic(RUN_STATE_FILE, text);
      });
    await this.writing;
  }

  private changed(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().catch(() => {});
    }, 200);
  }
}

/** True when the process that wrote a "running" state is still alive (same host only). */
export function runIsAlive(state: RunState): boolean {
  if (state.status !== "running") return false;
  if (state.host !== hostname()) return true;
  try {
    process.kill(state.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
