import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { initRoot } from "../src/config/init-root.js";
import { seededRandom } from "../src/formats/recipes/spherical-kmeans.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { encodeNpy } from "../src/io/npy.js";
import { readParquet, writeParquet } from "../src/io/parquet.js";
import { toFloat16Bits } from "../src/models/float16.js";
import { readStageTotals } from "../src/pipeline/run-report.js";
import { type FilterShardStats, filter } from "../src/stages/filter/filter.js";
import { filterVerdict } from "../src/stages/filter/row-verdict.js";
import { runCli } from "./support/cli.js";
import { tempDir } from "./support/temp.js";

const DIM = 48;
const TRUE_CLUSTERS = 10;
const REFERENCE = new URL("./support/recipes_reference.py", import.meta.url).pathname;

interface PoolRow {
  key: string;
  caption: string;
  language: string;
  tier: string;
  similarity: number;
}

interface Shard {
  name: string;
  rows: PoolRow[];
  vectors: Float32Array;
  dtype: "<f2" | "<f4";
}

let workDir: string;
let python: string | undefined;

before(async () => {
  workDir = await tempDir("recipes");
  // The reference needs numpy: Debian's python3 when it has it, else the one on PATH.
  python = ["/usr/bin/python3", "python3"].find((candidate) => {
    try {
      execFileSync(candidate, ["-c", "import numpy"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

const CAPTIONS = [
  "a photo of a red dog on the beach",
  "cat",
  "two words",
  "three\u00a0small words",
  "tab\tseparated caption here",
  "ein Hund im Garten spielt",
  "短い",
  "the quick brown fox jumps",
];

/**
 * Embeddings clustered like CLIP's: unit centres, anisotropic spread (each cluster its own scale
 * per dimension), and about a quarter of the rows near-duplicates of an earlier row.
 */
function generatePool(random: () => number, shardRows: readonly number[]): Shard[] {
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const centres = Array.from({ length: TRUE_CLUSTERS }, () =>
    normalise(Float32Array.from({ length: DIM }, gaussian)),
  );
  const scales = centres.map(() =>
    Float32Array.from({ length: DIM }, () => 0.12 * Math.exp(0.8 * gaussian())),
  );
  const made: { cluster: number; vector: Float32Array }[] = [];
  let counter = 0;
  return shardRows.map((count, shardIndex) => {
    const vectors = new Float32Array(count * DIM);
    const rows: PoolRow[] = [];
    for (let row = 0; row < count; row++) {
      let vector: Float32Array;
      if (made.length > 0 && random() < 0.25) {
        const original = made[Math.floor(random() * made.length)] as (typeof made)[number];
        vector = normalise(original.vector.map((value) => value + 0.004 * gaussian()));
      } else {
        const cluster = Math.floor(random() * TRUE_CLUSTERS);
        const centre = centres[cluster] as Float32Array;
        const scale = scales[cluster] as Float32Array;
        vector = normalise(
          centre.map((value, index) => value + (scale[index] as number) * gaussian()),
        );
        made.push({ cluster, vector });
      }
      vectors.set(vector, row * DIM);
      const language = ["en", "en", "de", ""][counter % 4] as string;
      rows.push({
        key: String(counter).padStart(9, "0"),
        caption: CAPTIONS[Math.floor(random() * CAPTIONS.length)] as string,
        language,
        tier: language === "en" ? "en" : language === "" ? "nolang" : "multi",
        similarity: 0.1 + 0.35 * random(),
      });
      counter++;
    }
    return {
      name: String(shardIndex).padStart(5, "0"),
      rows,
      vectors,
      dtype: shardIndex % 2 === 0 ? "<f2" : "<f4",
    };
  });
}

function normalise(vector: Float32Array): Float32Array {
  const norm = Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));
  return vector.map((value) => value / norm);
}

/** A root holding embed's outputs for the shards: metadata parquet and image `.npy`. */
async function writePool(root: string, shards: readonly Shard[], modelDigest = "a".repeat(64)) {
  const storage = new LocalStorage(root);
  await initRoot(storage);
  for (const shard of shards) {
    await writeParquet(
      storage,
      layout.embeddingMetadata(shard.name),
      [
        { name: "key", type: "VARCHAR", value: (row: PoolRow) => row.key },
        {
          name: "url",
          type: "VARCHAR",
          value: (row: PoolRow) => `https://img.example/${row.key}.jpg`,
        },
        { name: "caption", type: "VARCHAR", value: (row: PoolRow) => row.caption },
        { name: "similarity", type: "DOUBLE", value: (row: PoolRow) => row.similarity },
        { name: "language", type: "VARCHAR", value: (row: PoolRow) => row.language },
        { name: "language_tier", type: "VARCHAR", value: (row: PoolRow) => row.tier },
        { name: "width", type: "INTEGER", value: () => 256 },
        { name: "height", type: "INTEGER", value: () => 256 },
      ],
      shard.rows,
    );
    const shape = [shard.rows.length, DIM];
    const npy =
      shard.dtype === "<f2"
        ? encodeNpy({ dtype: "<f2", shape, data: toFloat16Bits(shard.vectors) })
        : encodeNpy({ dtype: "<f4", shape, data: shard.vectors });
    await storage.writeAtomic(layout.imageEmbeddings(shard.name), npy);
    await storage.writeAtomic(
      layout.embeddingStats(shard.name),
      JSON.stringify({ model: { folder: "model", precision: "fp32", digest: modelDigest } }),
    );
  }
  return storage;
}

/** Each key's drop reason (null: kept) after filter, from the dataset shards and the pool. */
async function filterReasons(root: string, shards: readonly Shard[]) {
  const kept = new Set<string>();
  for (const shard of shards) {
    for (const row of await readParquet(new LocalStorage(root), layout.datasetShard(shard.name))) {
      kept.add(String(row.key));
    }
  }
  return kept;
}

/** The numpy reference's verdict on every key. */
function referenceReasons(
  root: string,
  shards: readonly Shard[],
  recipes: Record<string, Record<string, unknown>>,
): Record<string, string | null> {
  const spec = join(root, "reference-spec.json");
  const body = JSON.stringify({
    shards: shards.map((shard) => ({
      npy: join(root, layout.imageEmbeddings(shard.name)),
      rows: shard.rows,
    })),
    recipes,
  });
  execFileSync("/bin/sh", ["-c", `cat > '${spec}'`], { input: body });
  return JSON.parse(
    execFileSync(python as string, [REFERENCE, spec], { maxBuffer: 1 << 26 }).toString(),
  );
}

function countReasons(reasons: Record<string, string | null>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const reason of Object.values(reasons)) {
    if (reason !== null) counts[reason] = (counts[reason] ?? 0) + 1;
  }
  return counts;
}

async function droppedByReason(root: string, shards: readonly Shard[]) {
  const counts: Record<string, number> = {};
  for (const shard of shards) {
    const stats = JSON.parse(
      await readFile(join(root, layout.datasetStats(shard.name)), "utf8"),
    ) as FilterShardStats;
    for (const [reason, count] of Object.entries(stats.dropped_by_reason)) {
      if (count > 0) counts[reason] = (counts[reason] ?? 0) + count;
    }
  }
  return counts;
}

/** Off the LAION rules, so only the recipes decide. */
const NO_BASE_RULES = {
  minCaptionLength: 0,
  minSimilarityEn: -1,
  minSimilarityMulti: -1,
  minSimilarityNolang: -1,
};

test("semdedup keeps exactly the pairs an independent numpy SemDeDup keeps, and counts the rest as semantic_duplicate", async (context) => {
  if (python === undefined) return context.skip("no python3 with numpy");
  const root = join(workDir, "semdedup");
  const shards = generatePool(seededRandom(11), [1200, 900]);
  const storage = await writePool(root, shards);
  const params = { epsilon: 0.02, clusters: 12, sample: 1500, iterations: 15, seed: 7 };
  // memoryMb=0.1 spills the clusters into several buckets.
  const spec = `semdedup:epsilon=0.02:clusters=12:sample=1500:iterations=15:seed=7:memoryMb=0.1`;
  const summary = await filter({ root, config: { ...NO_BASE_RULES, recipe: [spec] } });
  assert.equal(summary.ok, true);

  const expected = referenceReasons(root, shards, { semdedup: { ...params, memoryMb: 0.1 } });
  const kept = await filterReasons(root, shards);
  const expectedKept = Object.keys(expected).filter((key) => expected[key] === null);
  assert.deepEqual([...kept].sort(), expectedKept.sort());
  const duplicates = countReasons(expected).semantic_duplicate ?? 0;
  assert.ok(duplicates > 200, `the pool has near-duplicates (${duplicates})`);
  assert.deepEqual(await droppedByReason(root, shards), { semantic_duplicate: duplicates });
  assert.equal(summary.recipes?.semdedup?.duplicates, duplicates);
  assert.ok((summary.recipes?.semdedup?.buckets ?? 0) > 1, "spilled to more than one bucket");
  // The run report's totals count the reason too.
  const totals = await readStageTotals(storage);
  assert.equal(totals.filter?.drops.semantic_duplicate, duplicates);

  // Nothing changed: a re-run decides the same and skips every shard.
  const again = await filter({ root, config: { ...NO_BASE_RULES, recipe: [spec] } });
  assert.equal(again.shardsSkipped, shards.length);
});

test("clip-score-top, text and image-clusters compose as numpy's DataComp filters do", async (context) => {
  if (python === undefined) return context.skip("no python3 with numpy");
  const root = join(workDir, "datacomp");
  const random = seededRandom(23);
  const shards = generatePool(random, [700, 500]);
  await writePool(root, shards);
  // Targets: noisy copies of a few pool images, as a user's own image set would be.
  const targets = new Float32Array(6 * DIM);
  for (let target = 0; target < 6; target++) {
    const source = shards[0]?.vectors.subarray(
      target * 97 * DIM,
      (target * 97 + 1) * DIM,
    ) as Float32Array;
    targets.set(
      source.map((value) => value + 0.01 * (random() - 0.5)),
      target * DIM,
    );
  }
  const targetFile = join(root, "targets.npy");
  await writeFile(targetFile, encodeNpy({ dtype: "<f4", shape: [6, DIM], data: targets }));
  const recipe = [
    "clip-score-top:percent=30",
    "text:minWords=3:minChars=6:languages=en+de",
    `image-clusters:targets=${targetFile}:clusters=12:seed=3`,
  ];
  const summary = await filter({ root, config: { ...NO_BASE_RULES, recipe } });
  assert.equal(summary.ok, true);

  const expected = referenceReasons(root, shards, {
    "clip-score-top": { percent: 30 },
    text: { minWords: 3, minChars: 6, maxChars: 0, languages: "en+de" },
    "image-clusters": {
      targets: targetFile,
      clusters: 12,
      sample: 100000,
      iterations: 20,
      seed: 3,
    },
  });
  const kept = await filterReasons(root, shards);
  const expectedKept = Object.keys(expected).filter((key) => expected[key] === null);
  assert.ok(expectedKept.length > 20, `some pairs pass every recipe (${expectedKept.length})`);
  assert.deepEqual([...kept].sort(), expectedKept.sort());
  assert.deepEqual(await droppedByReason(root, shards), countReasons(expected));
  for (const reason of [
    "text_too_few_words",
    "text_language",
    "below_top_percent_en",
    "image_cluster_off_target",
  ]) {
    assert.ok((countReasons(expected)[reason] ?? 0) > 0, `${reason} is exercised`);
  }
});

test("an unknown recipe is refused in one line that lists the known ones", async () => {
  const root = join(workDir, "unknown");
  await writePool(root, generatePool(seededRandom(5), [50]));
  await assert.rejects(filter({ root, config: { recipe: ["semdedupe"] } }), (error: Error) => {
    assert.equal(
      error.message,
      'unknown recipe "semdedupe"; known recipes: clip-score-top, text, image-clusters, semdedup',
    );
    return true;
  });
});

test("bad recipe parameters are refused in one line naming the recipe and the parameter", async () => {
  const root = join(workDir, "params");
  await writePool(root, generatePool(seededRandom(5), [50]));
  const cases: [string, RegExp][] = [
    ["semdedup:epsilon=2", /^recipe semdedup: epsilon=2: /],
    ["semdedup:clusters=0", /^recipe semdedup: clusters=0: /],
    ["semdedup:epsilon=abc", /^recipe semdedup: epsilon=abc: /],
    ["clip-score-top:percent=0", /^recipe clip-score-top: percent=0: /],
    [
      "clip-score-top:top=30",
      /^recipe clip-score-top: unknown parameter top \(its parameters: percent\)$/,
    ],
    ["text:languages=English", /^recipe text: languages=English: /],
    ["text:minWords", /^recipe text: "minWords" is not PARAM=VALUE/],
    ["image-clusters", /^recipe image-clusters: targets=: /],
    ["text,text", /^recipe text is given twice$/],
  ];
  for (const [spec, message] of cases) {
    await assert.rejects(filter({ root, config: { recipe: [spec] } }), (error: Error) => {
      assert.match(error.message, message, spec);
      assert.ok(!error.message.includes("\n"), spec);
      return true;
    });
  }
});

test("a target file of another dimension or another recorded model is refused in one line", async () => {
  const root = join(workDir, "targets");
  await writePool(root, generatePool(seededRandom(5), [80]), "b".repeat(64));
  const wide = join(root, "wide.npy");
  await writeFile(
    wide,
    encodeNpy({
      dtype: "<f4",
      shape: [2, DIM + 1],
      data: new Float32Array(2 * (DIM + 1)).fill(0.1),
    }),
  );
  await assert.rejects(
    filter({ root, config: { recipe: [`image-clusters:targets=${wide}:clusters=4`] } }),
    (error: Error) => {
      assert.equal(
        error.message,
        `${wide}: target embeddings of dimension ${DIM + 1}, the dataset's are ${DIM}: embed the targets with the dataset's model`,
      );
      return true;
    },
  );
  const other = join(root, "other.npy");
  await writeFile(
    other,
    encodeNpy({ dtype: "<f4", shape: [2, DIM], data: new Float32Array(2 * DIM).fill(0.1) }),
  );
  await writeFile(join(root, "other.json"), JSON.stringify({ model: { digest: "c".repeat(64) } }));
  await assert.rejects(
    filter({ root, config: { recipe: [`image-clusters:targets=${other}:clusters=4`] } }),
    (error: Error) => {
      assert.equal(
        error.message,
        `${other}: target embeddings made with model cccccccccccc, the dataset's is bbbbbbbbbbbb: embed the targets with the dataset's model`,
      );
      return true;
    },
  );
  // The same file recorded with the dataset's model is taken.
  await writeFile(join(root, "other.json"), JSON.stringify({ model: { digest: "b".repeat(64) } }));
  const summary = await filter({
    root,
    config: { recipe: [`image-clusters:targets=${other}:clusters=4`] },
  });
  assert.equal(summary.ok, true);
});

test("subset --recipe leaves out of the dataset what filter --recipe drops from the same pool", async (context) => {
  if (python === undefined) return context.skip("no python3 with numpy");
  const root = join(workDir, "subset");
  const shards = generatePool(seededRandom(31), [600, 400]);
  await writePool(root, shards);
  const recipe = "clip-score-top:percent=50,semdedup:epsilon=0.02:clusters=8:seed=2";
  // The base rules keep every pair, so the dataset is the whole pool.
  await filter({ root, config: NO_BASE_RULES });
  const output = join(root, "curated.csv");
  const cli = await runCli(["subset", "--root", root, "--recipe", recipe, "-o", output, "--json"]);
  assert.equal(cli.code, 0, cli.stderr);
  const summary = JSON.parse(cli.stdout) as { rows: number; recipeDrops: Record<string, number> };
  const urls = (await readFile(output, "utf8"))
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => line.split(",")[0]);

  await filter({ root, config: { ...NO_BASE_RULES, recipe: [recipe] } });
  const kept = await filterReasons(root, shards);
  assert.deepEqual(urls.sort(), [...kept].map((key) => `https://img.example/${key}.jpg`).sort());
  assert.equal(summary.rows, kept.size);
  assert.deepEqual(summary.recipeDrops, await droppedByReason(root, shards));
  assert.ok((summary.recipeDrops.semantic_duplicate ?? 0) > 0);
});

test("the CLI refuses an unknown recipe in one line, for filter and subset", async () => {
  const root = join(workDir, "cli");
  await writePool(root, generatePool(seededRandom(3), [20]));
  const known = "known recipes: clip-score-top, text, image-clusters, semdedup";
  const filtered = await runCli(["filter", "--root", root, "--recipe", "datacomp"]);
  assert.notEqual(filtered.code, 0);
  assert.match(filtered.stderr, new RegExp(`unknown recipe "datacomp"; ${known}`));
  assert.equal(filtered.stderr.trim().split("\n").length, 1, filtered.stderr);
  await filter({ root, config: NO_BASE_RULES });
  const subsetted = await runCli([
    "subset",
    "--root",
    root,
    "--recipe",
    "clip-score-top,dedup",
    "-o",
    join(root, "x.csv"),
  ]);
  assert.notEqual(subsetted.code, 0);
  assert.match(subsetted.stderr, new RegExp(`unknown recipe "dedup"; ${known}`));
});

test("show's verdict names a text or percentile recipe's reason, and says the embedding recipes are not recomputed", async () => {
  const root = join(workDir, "show");
  const shards = generatePool(seededRandom(41), [300]);
  const storage = await writePool(root, shards);
  await filter({
    root,
    config: { ...NO_BASE_RULES, recipe: ["text:minWords=3:languages=any", "semdedup:clusters=4"] },
  });
  const rows = shards[0]?.rows ?? [];
  const short = rows.find((row) => row.caption.split(/\s+/).length < 3) as PoolRow;
  const metadata = layout.embeddingMetadata("00000");
  const verdict = await filterVerdict(storage, metadata, short.key, root);
  assert.equal(verdict.reason, "text_too_few_words");
  assert.match(
    verdict.notes.join("\n"),
    /semdedup decided over the whole pool and are not recomputed here/,
  );
});
