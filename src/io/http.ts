/** The HTTP client of clipcrawl's own inputs (WAT files, path listings, model files): undici. */
import { Agent, type Dispatcher, interceptors } from "undici";

let agent: Dispatcher | undefined;

/** A keep-alive agent that follows up to 5 redirects. */
export function httpDispatcher(): Dispatcher {
  agent ??= new Agent({ connections: 16 }).compose(interceptors.redirect({ maxRedirections: 5 }));
  return agent;
}

/** Statuses worth another attempt: the server may answer next time. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

export function sleep(milliseconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, milliseconds);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
