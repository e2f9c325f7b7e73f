/**
 * An S3-compatible server for tests: s3rver on 127.0.0.1 with a free port and its own folder,
 * reached through the SDK's standard credential chain (env) and an endpoint override, as a user
 * of MinIO or R2 would. `faultyProxy` puts a real network fault between a client and it.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { rm } from "node:fs/promises";
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { tempDir } from "./temp.js";

export interface TestS3Server {
  endpoint: string;
  bucket: string;
  /** s3rver's own folder. */
  directory: string;
  close(): Promise<void>;
}

/** s3rver's fixed key pair, set in the env so the SDK's default chain finds it. */
export function useTestCredentials(): void {
  process.env.AWS_ACCESS_KEY_ID = "S3RVER";
  process.env.AWS_SECRET_ACCESS_KEY = "S3RVER";
  process.env.AWS_REGION = "us-east-1";
}

/**
 * s3rver in a process of its own, with OpenSSL's legacy provider: s3rver encrypts its list
 * continuation tokens with DES, which Node 20's OpenSSL 3 refuses otherwise (an internal error on
 * the second page of every listing).
 *
 * s3rver keeps objects as files and, on a DELETE, removes the folders the delete left empty.
 * A PUT under the same prefix at that moment then opens its file in a folder that is gone, and
 * the unhandled stream error ends s3rver (seen with lock claims written and deleted at once).
 * S3 has no folders, so the child leaves empty ones in place; its listings skip them.
 */
const S3RVER_MAIN = `
require(require.resolve("fs-extra", { paths: [require.resolve("s3rver")] })).rmdir = async () => {};
const S3rver = require("s3rver");
const [directory, bucket] = process.argv.slice(1);
new S3rver({ address: "127.0.0.1", port: 0, directory, silent: true, configureBuckets: [{ name: bucket }] })
  .run()
  .then((address) => process.stdout.write(JSON.stringify({ port: address.port }) + "\\n"));
`;

export async function startS3Server(bucket = "clipcrawl-test"): Promise<TestS3Server> {
  useTestCredentials();
  const directory = await tempDir("s3rver");
  const child = spawn(
    process.execPath,
    ["--openssl-legacy-provider", "-e", S3RVER_MAIN, directory, bucket],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const [line] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
  const { port } = JSON.parse(line) as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    directory,
    close: async () => {
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * What the proxy does with a request: pass it on, cut it, hold it until a promise settles,
 * answer it with an error status itself (a 503 SlowDown, as S3 answers when it sheds load), or
 * pass it on and, after this many bytes of the answer's body, cut its connection or fall silent
 * (the connection stays open, nothing more is sent).
 */
export type ProxyAction =
  | "pass"
  | "cut"
  | Promise<void>
  | { status: number }
  | { cutAnswerAfter: number }
  | { stallAnswerAfter: number };

/**
 * An HTTP proxy in front of `target`. A request `decide` cuts has its connection destroyed after
 * part of its body arrived (the store going away mid-upload); one it holds is forwarded later.
 */
export async function faultyProxy(
  target: string,
  decide: (request: IncomingMessage) => ProxyAction,
): Promise<{ endpoint: string; cut: number; answered: number; close(): Promise<void> }> {
  const upstream = new URL(target);
  const state = { cut: 0, answered: 0 };
  const server: Server = createServer(async (incoming, outgoing) => {
    const action = decide(incoming);
    if (action === "cut") {
      state.cut++;
      incoming.once("data", () => incoming.socket.destroy());
      return;
    }
    const answerLimit =
      typeof action === "object" && "cutAnswerAfter" in action
        ? { bytes: action.cutAnswerAfter, fault: "cut" }
        : typeof action === "object" && "stallAnswerAfter" in action
          ? { bytes: action.stallAnswerAfter, fault: "stall" }
          : undefined;
    if (typeof action === "object" && "status" in action) {
      state.answered++;
      incoming.resume();
      incoming.once("end", () => {
        outgoing.writeHead(action.status, { "content-type": "application/xml" });
        outgoing.end(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
        );
      });
      return;
    }
    if (action instanceof Promise) {
      incoming.pause();
      await action;
    }
    const forwarded = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers: incoming.headers,
      },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        if (answerLimit === undefined) {
          answer.pipe(outgoing);
          return;
        }
        let left = answerLimit.bytes;
        answer.on("data", (chunk: Buffer) => {
          if (left <= 0) return;
          outgoing.write(chunk.subarray(0, left));
          left -= chunk.length;
          if (left > 0) return;
          state.cut++;
          answer.destroy();
          // Let the bytes already written reach the client before the connection dies.
          if (answerLimit.fault === "cut") setTimeout(() => outgoing.socket?.destroy(), 20);
        });
        answer.on("end", () => outgoing.end());
      },
    );
    forwarded.on("error", () => outgoing.destroy());
    incoming.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get cut() {
      return state.cut;
    },
    /** Requests the proxy answered itself with a status. */
    get answered() {
      return state.answered;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
