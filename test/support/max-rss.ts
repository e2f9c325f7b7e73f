/**
 * Preloaded into a child process (`node --import …/max-rss.ts`): at exit, writes the process's
 * peak resident set size in bytes (worker threads included) to $CLIPCRAWL_MAX_RSS_FILE.
 */
import { writeFileSync } from "node:fs";

const target = process.env.CLIPCRAWL_MAX_RSS_FILE;
if (target !== undefined) {
  process.on("exit", () => {
    writeFileSync(target, String(process.resourceUsage().maxRSS * 1024));
  });
}
