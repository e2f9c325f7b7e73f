/**
 * `npm run bench -- <name> [args]`: runs bench/<name>.ts, whose `main(args)` prints its figures
 * next to the peer or limit it is compared with, measured in the same run on the same input.
 */
import { readdir } from "node:fs/promises";

const [name, ...args] = process.argv.slice(2);
const available = (await readdir(new URL(".", import.meta.url)))
  .filter((file) => file.endsWith(".ts") && file !== "main.ts" && file !== "support.ts")
  .map((file) => file.slice(0, -3));
if (name === undefined || !available.includes(name)) {
  process.stderr.write(`usage: npm run bench -- <${available.join("|")}> [args]\n`);
  process.exit(2);
}
const bench = (await import(`./${name}.ts`)) as { main?: (args: string[]) => Promise<void> };
if (typeof bench.main === "function") await bench.main(args);
