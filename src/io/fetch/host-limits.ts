/**
 * Runs one task per item with at most `concurrency` running and at most `perHost` holding a
 * slot of the same host. An item whose host is busy waits aside while later items of other
 * hosts go ahead, so one slow or popular host never stalls the shard.
 */
export interface HostLimits {
  concurrency: number;
  perHost: number;
}

/**
 * `task(item, releaseHost)` runs with a global slot and a host slot; it may give the host slot
 * back early (after the network part), and the global slot is freed when it resolves.
 */
export async function runWithHostLimits<Item>(
  items: readonly Item[],
  hostOf: (item: Item) => string,
  limits: HostLimits,
  task: (item: Item, releaseHost: () => void) => Promise<void>,
): Promise<void> {
  const hostActive = new Map<string, number>();
  const waitingByHost = new Map<string, number[]>();
  /** Items whose host slot is already reserved for them. */
  const ready: number[] = [];
  let nextIndex = 0;
  let running = 0;
  let finished = 0;

  return new Promise<void>((resolve, reject) => {
    let failed = false;

    const releaseHost = (host: string) => {
      const waiting = waitingByHost.get(host);
      const handOver = waiting?.shift();
      if (handOver !== undefined) {
        ready.push(handOver);
        if (waiting?.length === 0) waitingByHost.delete(host);
      } else {
        const active = (hostActive.get(host) ?? 1) - 1;
        if (active === 0) hostActive.delete(host);
        else hostActive.set(host, active);
      }
    };

    const takeNext = (): number | undefined => {
      const handed = ready.shift();
      if (handed !== undefined) return handed;
      while (nextIndex < items.length) {
        const index = nextIndex++;
        const host = hostOf(items[index] as Item);
        const active = hostActive.get(host) ?? 0;
        if (host !== "" && active >= limits.perHost) {
          const waiting = waitingByHost.get(host);
          if (waiting === undefined) waitingByHost.set(host, [index]);
          else waiting.push(index);
          continue;
        }
        hostActive.set(host, active + 1);
        return index;
      }
      return undefined;
    };

    const pump = () => {
      while (!failed && running < limits.concurrency) {
        const index = takeNext();
        if (index === undefined) break;
        running++;
        const item = items[index] as Item;
        const host = hostOf(item);
        let hostReleased = false;
        const release = () => {
          if (hostReleased) return;
          hostReleased = true;
          releaseHost(host);
        };
        task(item, release).then(
          () => {
            release();
            running--;
            finished++;
            if (finished === items.length) resolve();
            else pump();
          },
          (error: unknown) => {
            failed = true;
            reject(error);
          },
        );
      }
    };

    if (items.length === 0) resolve();
    else pump();
  });
}

/** The host an URL is fetched from, for the per-host limit; "" when it has none. */
export function hostOfUrl(url: string): string {
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    return "";
  }
}
