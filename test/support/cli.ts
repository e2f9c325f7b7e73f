import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** SIGKILL after this long (default: none). */
  timeoutMs?: number;
}

/** Runs a command to its end and collects what it printed. */
export function runProcess(
  command: string,
  args: string[],
  options: RunOptions = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs the real `clipcrawl` CLI (from source, through tsx) as a user would. */
export function runCli(
  args: string[],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return runProcess(process.execPath, ["--import", "tsx", MAIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: "1" },
    timeoutMs: options.timeoutMs ?? 60_000,
  });
}

/**
 * Starts the real `clipcrawl` CLI and SIGKILLs it as soon as `reached()` is true (checked every
 * `pollMs`), or after two minutes; resolves with the signal, or `exit CODE` when it ended first.
 */
export function runCliUntilKilled(
  args: string[],
  reached: () => boolean,
  pollMs: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { stdio: "ignore" });
    const poll = setInterval(() => {
      if (reached()) {
        child.kill("SIGKILL");
        clearInterval(poll);
      }
    }, pollMs);
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve(signal ?? `exit ${code}`);
    });
  });
}

export interface CliServer {
  child: ChildProcess;
  /** The http://127.0.0.1:PORT the command printed. */
  url: string;
  stderr(): string;
  /** Sends `signal` (default SIGTERM; SIGKILL a minute later); the exit code and the ms from signal to exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
}

/** Starts the real `clipcrawl` CLI (serve, demo) and resolves once it prints the URL it listens on. */
export async function startCliServer(args: string[]): Promise<CliServer> {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no URL in time: ${stdout} ${stderr}`));
    }, 120_000);
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const match = /(http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once("exit", () => {
      clearTimeout(timer);
      reject(new Error(`exited: ${stderr}`));
    });
  });
  return {
    child,
    url,
    stderr: () => stderr,
    stop: async (signal = "SIGTERM") => {
      const sent = performance.now();
      child.kill(signal);
      const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      const code = await exited;
      clearTimeout(killer);
      return { code, ms: performance.now() - sent };
    },
  };
}
