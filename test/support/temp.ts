import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `clipcrawl-${prefix}-`));
}
