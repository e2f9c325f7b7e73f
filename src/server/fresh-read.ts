/**
 * A read that every caller needs fresh — started after the caller asked — shared by the callers
 * that ask at the same time. A server checks the root's tombstones before each request so that a
 * removal is honoured from the moment it returns; on object storage that check is a request of
 * its own, and one per request would multiply the store's load by the concurrency.
 *
 * A caller gets the read in flight if none is, else the one that starts when it ends (one for all
 * who asked meanwhile): never a result read before it asked, and at most one read in flight and
 * one waiting, whatever the number of callers.
 */
export class FreshRead<T> {
  private running: Promise<T> | undefined;
  private waiting: Promise<T> | undefined;

  constructor(private readonly read: () => Promise<T>) {}

  get(): Promise<T> {
    const running = this.running;
    if (running === undefined) return this.start();
    this.waiting ??= running
      .catch(() => undefined)
      .then(() => {
        this.waiting = undefined;
        return this.start();
      });
    return this.waiting;
  }

  private start(): Promise<T> {
    const read = this.read().finally(() => {
      if (this.running === read) this.running = undefined;
    });
    this.running = read;
    return read;
  }
}
