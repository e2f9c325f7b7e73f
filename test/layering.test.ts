/**
 * The layering check (`npm run layering`, dependency-cruiser with .dependency-cruiser.cjs, run on
 * the project's own tree by `npm test`) fails on an edge the architecture forbids, naming the rule.
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { runProcess } from "./support/cli.js";
import { tempDir } from "./support/temp.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const DEPCRUISE = join(REPO, "node_modules", ".bin", "depcruise");

let work: string;

before(async () => {
  work = await tempDir("layering");
  await copyFile(join(REPO, ".dependency-cruiser.cjs"), join(work, ".dependency-cruiser.cjs"));
  await copyFile(join(REPO, "tsconfig.json"), join(work, "tsconfig.json"));
  const files: Record<string, string> = {
    // A stage reaching into the runner, a server reading a stage folder, io importing config.
    "src/stages/caption/caption.ts":
      'import { run } from "../../runner/local.js";\nexport const caption = run;\n',
    "src/runner/local.ts": "export const run = 1;\n",
    "src/server/routes.ts":
      'import { caption } from "../stages/caption/caption.js";\nexport const routes = caption;\n',
    "src/io/file.ts":
      'import { config } from "../config/schema.js";\nexport const file = config;\n',
    "src/config/schema.ts": "export const config = 2;\n",
    // Two modules that import each other at run time.
    "src/formats/a.ts": 'import { b } from "./b.js";\nexport const a = () => b;\n',
    "src/formats/b.ts": 'import { a } from "./a.js";\nexport const b = () => a;\n',
  };
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(work, path)), { recursive: true });
    await writeFile(join(work, path), text);
  }
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test("a forbidden import fails the layering check with the name of the rule it breaks", async () => {
  const result = await runProcess(DEPCRUISE, ["src", "--config", ".dependency-cruiser.cjs"], {
    cwd: work,
  });
  assert.notEqual(result.code, 0);
  const output = result.stdout + result.stderr;
  for (const rule of [
    "stage-imports-orchestration",
    "server-imports-stage",
    "io-imports-above",
    "no-runtime-cycle",
  ]) {
    assert.match(output, new RegExp(`error ${rule}:`), rule);
  }
  assert.match(output, /src\/stages\/caption\/caption\.ts → src\/runner\/local\.ts/);
});
