/**
 * Exports that run in the background (`/api/export/jobs`): an id to poll for progress and, once
 * done, the file. A few run at once; finished jobs and their files are kept for a while, then
 * removed, and all of them when the server closes.
 */
import { randomUUID } from "node:crypto";
import { RequestError } from "./request-error.js";
import { type ExportFormat, removeExportFolder } from "./subset-export.js";

export interface ExportJobStatus {
  state: "running" | "done" | "failed";
  done: number;
  total: number;
  error?: string;
}

export interface ExportJobProgress {
  setTotal(total: number): void;
  setDone(done: number): void;
}

export interface ExportJobFile {
  folder: string;
  path: string;
  format: ExportFormat;
}

interface Job {
  status: ExportJobStatus;
  file: ExportJobFile | undefined;
  finished: number | undefined;
}

export class ExportJobs {
  private readonly jobs = new Map<string, Job>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly maxRunning = 2,
    private readonly keepMs = 60 * 60 * 1000,
  ) {
    this.sweeper = setInterval(() => void this.sweep(), Math.min(keepMs, 60_000));
    this.sweeper.unref();
  }

  start(run: (progress: ExportJobProgress) => Promise<ExportJobFile>): string {
    const running = [...this.jobs.values()].filter((job) => job.status.state === "running");
    if (running.length >= this.maxRunning) {
      throw new RequestError(
        undefined,
        `${running.length} exports are running; try again when one is done`,
        429,
      );
    }
    const id = randomUUID();
    const job: Job = {
      status: { state: "running", done: 0, total: 0 },
      file: undefined,
      finished: undefined,
    };
    this.jobs.set(id, job);
    run({
      setTotal: (total) => {
        job.status.total = total;
      },
      setDone: (done) => {
        job.status.done = done;
      },
    }).then(
      (file) => {
        job.file = file;
        if (this.closed) void this.remove(job);
        job.status.state = "done";
        job.finished = Date.now();
      },
      (error: unknown) => {
        job.status.state = "failed";
        job.status.error = error instanceof Error ? error.message : String(error);
        job.finished = Date.now();
      },
    );
    return id;
  }

  status(id: string): ExportJobStatus | undefined {
    const status = this.jobs.get(id)?.status;
    return status === undefined ? undefined : { ...status };
  }

  /** The file of a finished job. */
  file(id: string): ExportJobFile | undefined {
    return this.jobs.get(id)?.file;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    await Promise.all([...this.jobs.values()].map((job) => this.remove(job)));
    this.jobs.clear();
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const [id, job] of this.jobs) {
      if (job.finished !== undefined && now - job.finished > this.keepMs) {
        this.jobs.delete(id);
        await this.remove(job);
      }
    }
  }

  private async remove(job: Job): Promise<void> {
    if (job.file !== undefined) await removeExportFolder(job.file.folder);
  }
}
