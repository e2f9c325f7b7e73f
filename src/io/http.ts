/**
 * What clipcrawl's own downloads (WAT files, path listings, model files) share besides their
 * dispatcher, which is the network guard's (network-guard.ts).
 */

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
