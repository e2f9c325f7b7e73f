/**
 * `clipcrawl serve --shard …` under load (issue 19): a front and 2 serve processes holding half
 * of a 4-shard index each, against 1 process holding all 4, on the same vectors and queries.
 *
 *   npm run bench -- serve-fanout [--vectors 20000] [--queries 300] [--connections 16]
 *                                 [--seconds 15] [--num-images 10]
 */
import { parseArgs } from "node:util";
import { fanOutBench } from "./serve.js";
import type { BenchRow } from "./support.js";

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: {
      vectors: { type: "string", default: "20000" },
      queries: { type: "string", default: "300" },
      connections: { type: "string", default: "16" },
      seconds: { type: "string", default: "15" },
      "num-images": { type: "string", default: "10" },
    },
  });
  return fanOutBench(
    Number(values.vectors),
    Number(values.queries),
    Number(values["num-images"]),
    Number(values.connections),
    Number(values.seconds),
  );
}
