import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fetchModel, ModelFetchError } from "../src/models/hub-download.js";
import { runCli } from "./support/cli.js";
import { tempDir } from "./support/temp.js";

/** A local imitation of the Hugging Face hub: the revision API, and /resolve/ redirecting to a CDN path. */
const repoFiles: Record<string, Buffer> = {
  "config.json": Buffer.from('{"model_type":"clip"}'),
  "tokenizer.json": Buffer.from('{"model":{"type":"BPE"}}'),
  "tokenizer_config.json": Buffer.from("{}"),
  "preprocessor_config.json": Buffer.from('{"crop_size":224}'),
  "onnx/text_model.onnx": Buffer.alloc(200_000, 7),
  "onnx/vision_model.onnx": Buffer.alloc(300_000, 9),
  "onnx/vision_model_quantized.onnx": Buffer.alloc(1000, 1),
  "onnx/text_model_quantized.onnx": Buffer.alloc(1000, 2),
  "README.md": Buffer.from("# readme"),
};

let server: Server;
let endpoint = "";
const requests: { path: string; range?: string; authorization?: string }[] = [];
let cutNextVisionDownload = false;
let corruptVision = false;

before(async () => {
  server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://hub");
    requests.push({
      path: url.pathname,
      range: request.headers.range,
      authorization: request.headers.authorization,
    });
    if (url.pathname === "/api/models/acme/tiny-clip/revision/main") {
      const siblings = Object.entries(repoFiles).map(([path, bytes]) =>
        path.endsWith(".onnx")
          ? {
              rfilename: path,
              size: 134,
              lfs: { size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") },
            }
          : { rfilename: path, size: bytes.length },
      );
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ id: "acme/tiny-clip", sha: "abc123", siblings }));
      return;
    }
    if (url.pathname === "/api/models/acme/private/revision/main") {
      response.writeHead(401).end();
      return;
    }
    const resolve = /^\/acme\/tiny-clip\/resolve\/main\/(.+)$/.exec(url.pathname);
    if (resolve !== null) {
      response.writeHead(302, { location: `/cdn/${resolve[1]}` }).end();
      return;
    }
    const cdn = /^\/cdn\/(.+)$/.exec(url.pathname);
    const bytes = cdn === null ? undefined : repoFiles[decodeURIComponent(cdn[1] ?? "")];
    if (bytes === undefined) {
      response.writeHead(404).end();
      return;
    }
    let body = bytes;
    if (corruptVision && url.pathname.endsWith("vision_model.onnx"))
      body = Buffer.alloc(bytes.length, 0);
    const range = /bytes=(\d+)-/.exec(request.headers.range ?? "");
    if (range !== null) {
      const from = Number(range[1]);
      response.writeHead(206, {
        "content-length": body.length - from,
        "content-range": `bytes ${from}-${body.length - 1}/${body.length}`,
      });
      response.end(body.subarray(from));
      return;
    }
    response.writeHead(200, { "content-length": body.length });
    if (cutNextVisionDownload && url.pathname.endsWith("vision_model.onnx")) {
      cutNextVisionDownload = false;
      response.write(body.subarray(0, 100_000));
      setTimeout(() => response.destroy(), 20);
      return;
    }
    response.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

/** The imitation hub is on 127.0.0.1: a local mirror, which the network guard lets through only when told. */
const local = { allowPrivateNetwork: true };

test("model fetch downloads the CLIP files of the repository (not the others), checked, through redirects", async () => {
  const modelsDir = await tempDir("models");
  const fetched = await fetchModel({
    repoId: "acme/tiny-clip",
    modelsDir,
    endpoint,
    token: "secret-token",
    ...local,
  });
  assert.equal(fetched.commit, "abc123");
  assert.deepEqual(fetched.files.map((file) => file.path).sort(), [
    "config.json",
    "onnx/text_model.onnx",
    "onnx/vision_model.onnx",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
  ]);
  for (const file of fetched.files) {
    assert.deepEqual(
      await readFile(join(modelsDir, "acme/tiny-clip", file.path)),
      repoFiles[file.path],
    );
  }
  const manifest = JSON.parse(
    await readFile(join(modelsDir, "acme/tiny-clip/clipcrawl-model.json"), "utf8"),
  );
  assert.equal(manifest.commit, "abc123");
  assert.ok(
    requests.some(
      (entry) =>
        entry.path === "/api/models/acme/tiny-clip/revision/main" &&
        entry.authorization === "Bearer secret-token",
    ),
  );
});

test("an interrupted download resumes with a Range request, and a re-run skips complete files", async () => {
  const modelsDir = await tempDir("models-resume");
  cutNextVisionDownload = true;
  requests.length = 0;
  await fetchModel({ repoId: "acme/tiny-clip", modelsDir, endpoint, retries: 2, ...local });
  const visionRequests = requests.filter((entry) => entry.path === "/cdn/onnx/vision_model.onnx");
  assert.equal(visionRequests.length, 2);
  assert.equal(visionRequests[1]?.range, "bytes=100000-");
  assert.deepEqual(
    await readFile(join(modelsDir, "acme/tiny-clip/onnx/vision_model.onnx")),
    repoFiles["onnx/vision_model.onnx"],
  );
  requests.length = 0;
  const again = await fetchModel({ repoId: "acme/tiny-clip", modelsDir, endpoint, ...local });
  assert.equal(again.downloadedBytes, 0);
  assert.equal(requests.filter((entry) => entry.path.startsWith("/cdn/")).length, 0);
});

test("the quantized variant picks the _quantized ONNX files", async () => {
  const fetched = await fetchModel({
    repoId: "acme/tiny-clip",
    modelsDir: await tempDir("models-q"),
    endpoint,
    variant: "quantized",
    ...local,
  });
  assert.ok(fetched.files.some((file) => file.path === "onnx/vision_model_quantized.onnx"));
  assert.ok(!fetched.files.some((file) => file.path === "onnx/vision_model.onnx"));
});

test("a sha256 mismatch removes the partial file and says to run again", async () => {
  corruptVision = true;
  try {
    await assert.rejects(
      fetchModel({
        repoId: "acme/tiny-clip",
        modelsDir: await tempDir("models-bad"),
        endpoint,
        ...local,
      }),
      /onnx\/vision_model\.onnx: sha256 [0-9a-f]+ does not match the hub's [0-9a-f]+; the partial file was removed, run again/,
    );
  } finally {
    corruptVision = false;
  }
});

test("unknown, private and malformed model ids get one clear line each", async () => {
  const modelsDir = await tempDir("models-errors");
  await assert.rejects(
    fetchModel({ repoId: "acme/nothing", modelsDir, endpoint, ...local }),
    /no model acme\/nothing at revision main/,
  );
  await assert.rejects(
    fetchModel({ repoId: "acme/private", modelsDir, endpoint, ...local }),
    /set HF_TOKEN/,
  );
  await assert.rejects(
    fetchModel({ repoId: "../../etc", modelsDir, endpoint, ...local }),
    ModelFetchError,
  );
  await assert.rejects(
    fetchModel({ repoId: "acme/tiny-clip", modelsDir, endpoint: "http://127.0.0.1:1", ...local }),
    /cannot reach the model hub/,
  );
});

test("HF_ENDPOINT is the default endpoint", async () => {
  const saved = process.env.HF_ENDPOINT;
  process.env.HF_ENDPOINT = endpoint;
  try {
    const modelsDir = await tempDir("models-env");
    await writeFile(join(modelsDir, "marker"), "");
    const fetched = await fetchModel({ repoId: "acme/tiny-clip", modelsDir, ...local });
    assert.equal(fetched.commit, "abc123");
  } finally {
    if (saved === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = saved;
  }
});

test("a hub on a private address is refused without --allow-private-network: one line naming the flag, nothing fetched", async () => {
  const modelsDir = await tempDir("models-guard");
  requests.length = 0;
  await assert.rejects(
    fetchModel({ repoId: "acme/tiny-clip", modelsDir, endpoint }),
    (error: unknown) => {
      assert.ok(error instanceof ModelFetchError);
      assert.equal(
        error.message,
        `${endpoint}/api/models/acme/tiny-clip/revision/main?blobs=true: private address 127.0.0.1 refused (loopback; --allow-private-network allows it)`,
      );
      return true;
    },
  );
  // A name is checked on the address it resolves to.
  const byName = endpoint.replace("127.0.0.1", "localhost");
  await assert.rejects(
    fetchModel({ repoId: "acme/tiny-clip", modelsDir, endpoint: byName }),
    /^ModelFetchError: http:\/\/localhost:\d+\/\S+: private address (127\.0\.0\.1|::1) \(localhost\) refused \(loopback; --allow-private-network allows it\)$/,
  );
  assert.equal(requests.length, 0, "no request reached the hub");
});

test("clipcrawl model fetch --allow-private-network fetches from a local mirror (HF_ENDPOINT); without it, one line and exit 1", async () => {
  const modelsDir = await tempDir("models-cli");
  const saved = process.env.HF_ENDPOINT;
  process.env.HF_ENDPOINT = endpoint;
  try {
    const args = ["model", "fetch", "acme/tiny-clip", "--models-dir", modelsDir];
    const refused = await runCli(args);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      `clipcrawl: ${endpoint}/api/models/acme/tiny-clip/revision/main?blobs=true: private address 127.0.0.1 refused (loopback; --allow-private-network allows it)\n`,
    );
    const fetched = await runCli([...args, "--allow-private-network", "--json"]);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(JSON.parse(fetched.stdout).commit, "abc123");
    assert.deepEqual(
      await readFile(join(modelsDir, "acme/tiny-clip/onnx/vision_model.onnx")),
      repoFiles["onnx/vision_model.onnx"],
    );
  } finally {
    if (saved === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = saved;
  }
});
