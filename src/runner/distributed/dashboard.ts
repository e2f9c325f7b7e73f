/**
 * `clipcrawl dashboard`: bull-board's queue dashboard over the stage queues — waiting, active,
 * completed and failed jobs, each with its data (root, stage, shard), its worker, its tries and
 * its failure reason; failed jobs can be retried from there. Served by Hono on Node's HTTP server.
 */
import type { AddressInfo } from "node:net";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { HonoAdapter } from "@bull-board/hono";
import { serve } from "@hono/node-server";
import { serveStatic } from "@hono/node-server/serve-static";
import { Queue } from "bullmq";
import { Hono } from "hono";
import { STAGE_NAMES } from "../../pipeline/pipeline.js";
import { type QueueOptions, queueName, redisOptions } from "./queue-names.js";

export interface DashboardOptions {
  queue: QueueOptions;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Where the dashboard is mounted (default "/"). */
  basePath?: string;
}

export interface RunningDashboard {
  url: string;
  close(): Promise<void>;
}

export async function startDashboard(options: DashboardOptions): Promise<RunningDashboard> {
  const connection = redisOptions(options.queue.url);
  const queues = STAGE_NAMES.map(
    (stage) => new Queue(queueName(stage), { connection, prefix: options.queue.prefix }),
  );
  for (const queue of queues) queue.on("error", () => {});
  const basePath = (options.basePath ?? "/").replace(/\/$/, "") || "/";
  const adapter = new HonoAdapter(serveStatic);
  createBullBoard({
    queues: queues.map((queue) => new BullMQAdapter(queue)),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: `clipcrawl · ${options.queue.prefix}` } },
  });
  adapter.setBasePath(basePath);
  const app = new Hono();
  app.route(basePath, adapter.registerPlugin());

  const host = options.host ?? "127.0.0.1";
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const started = serve({ fetch: app.fetch, hostname: host, port: options.port ?? 3000 }, () =>
      resolve(started),
    );
    started.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}${basePath === "/" ? "/" : `${basePath}/`}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all(queues.map((queue) => queue.close()));
    },
  };
}
