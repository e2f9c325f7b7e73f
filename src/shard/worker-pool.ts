/**
 * A fixed pool of worker threads running one kind of task. The local runner's unit of
 * parallelism: a stage hands it shards and gets results back in whatever order they finish.
 * A worker that crashes fails only its own task and is replaced.
 */
import { cpus } from "node:os";
import { isMainThread, parentPort, type TransferListItem, Worker } from "node:worker_threads";

type Reply<Result> =
  | { id: number; ok: true; result: Result }
  | { id: number; ok: false; error: string };

interface PendingTask<Task, Result> {
  id: number;
  task: Task;
  transfer: TransferListItem[];
  resolve: (result: Result) => void;
  reject: (error: Error) => void;
}

export class WorkerPool<Task, Result> {
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, PendingTask<Task, Result>>();
  private readonly queue: PendingTask<Task, Result>[] = [];
  private nextId = 0;
  private closed = false;

  constructor(
    private readonly moduleUrl: URL,
    readonly size: number,
  ) {
    if (size < 1) throw new Error(`worker pool size must be at least 1, got ${size}`);
  }

  /** Runs the task on the next free worker; `transfer` lists ports or buffers it hands over. */
  run(task: Task, transfer: TransferListItem[] = []): Promise<Result> {
    if (this.closed) return Promise.reject(new Error("worker pool is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, task, transfer, resolve, reject });
      this.pump();
    });
  }

  /** Stops every worker; tasks still queued or running are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = [...this.idle, ...this.busy.keys()];
    const unfinished = [...this.busy.values(), ...this.queue];
    this.idle.length = 0;
    this.busy.clear();
    this.queue.length = 0;
    for (const task of unfinished) task.reject(new Error("the worker pool was closed"));
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? (this.busy.size < this.size ? this.spawn() : undefined);
      if (worker === undefined) return;
      const next = this.queue.shift() as PendingTask<Task, Result>;
      this.busy.set(worker, next);
      worker.postMessage({ id: next.id, task: next.task }, next.transfer);
    }
  }

  private spawn(): Worker {
    const worker = startWorker(this.moduleUrl);
    worker.on("message", (reply: Reply<Result>) => {
      const pending = this.busy.get(worker);
      if (pending === undefined || pending.id !== reply.id) return;
      this.busy.delete(worker);
      if (reply.ok) pending.resolve(reply.result);
      else pending.reject(new Error(reply.error));
      if (!this.closed) {
        this.idle.push(worker);
        this.pump();
      }
    });
    const fail = (error: Error) => {
      const pending = this.busy.get(worker);
      this.busy.delete(worker);
      const index = this.idle.indexOf(worker);
      if (index >= 0) this.idle.splice(index, 1);
      pending?.reject(error);
      if (!this.closed) this.pump();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => {
      if (!this.closed) fail(new Error(`worker thread exited with code ${code}`));
    });
    return worker;
  }
}

/**
 * Running from TypeScript sources (tsx, in development and tests), a worker must register tsx's
 * loader itself before importing its module: threads do not inherit loaders registered at run
 * time, and `--import tsx` in a worker's execArgv comes too late for its entry module.
 */
function startWorker(moduleUrl: URL): Worker {
  if (!moduleUrl.pathname.endsWith(".ts")) return new Worker(moduleUrl);
  const tsxApi = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  const entry = JSON.stringify(moduleUrl.href);
  const bootstrap = `import(${tsxApi}).then((tsx) => { tsx.register(); return import(${entry}); });`;
  return new Worker(bootstrap, { eval: true });
}

/** In a worker module: answer the pool's tasks with `handle`. */
export function serveWorkerTasks<Task, Result>(handle: (task: Task) => Promise<Result>): void {
  if (isMainThread || parentPort === null)
    throw new Error("serveWorkerTasks runs in a worker thread");
  const port = parentPort;
  port.on("message", async ({ id, task }: { id: number; task: Task }) => {
    try {
      port.postMessage({ id, ok: true, result: await handle(task) } satisfies Reply<Result>);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      port.postMessage({ id, ok: false, error: message } satisfies Reply<Result>);
    }
  });
}

/** Threads to use when the config says 0 ("all cores"). */
export function defaultParallelism(configured: number): number {
  return configured > 0 ? configured : Math.max(1, cpus().length);
}

/** The URL of a sibling module, as .ts under tsx and .js once compiled. */
export function siblingModule(importMetaUrl: string, name: string): URL {
  const extension = importMetaUrl.endsWith(".ts") ? ".ts" : ".js";
  return new URL(`./${name}${extension}`, importMetaUrl);
}
