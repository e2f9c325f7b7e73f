import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type DemoImageServer, startDemoImageServer } from "../src/demo/image-server.js";
import { SHAPE_IMAGE_HOST } from "../src/demo/sample/wat-generator.js";
import { ConfigError } from "../src/errors.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { download } from "../src/stages/download/download.js";
import { tempDir } from "./support/temp.js";

let web: DemoImageServer;

before(async () => {
  web = await startDemoImageServer([SHAPE_IMAGE_HOST]);
});

after(async () => {
  await web.close();
});

const URLS = [
  `https://${SHAPE_IMAGE_HOST}/img/red-circle-0001.jpg`,
  `http://${SHAPE_IMAGE_HOST}/img/blue-star-0002.jpg`,
  `https://${SHAPE_IMAGE_HOST}/img/not-a-shape.jpg`,
];

async function run(work: string, name: string, caCertificates: string) {
  const list = join(work, "urls.txt");
  await writeFile(list, `${URLS.join("\n")}\n`);
  const root = join(work, name);
  await download({
    root,
    inputs: [list],
    config: {
      allowPrivateNetwork: true,
      connectTo: web.connectTo,
      caCertificates,
      retries: 0,
      workers: 1,
    },
  });
  const rows = await readParquet(new LocalStorage(root), layout.imageParquet("00000"), [
    "url",
    "status",
    "error_message",
  ]);
  return new Map(rows.map((row) => [String(row.url), row]));
}

test("HTTPS images are fetched when caCertificates names the server's authority", async () => {
  const work = await tempDir("download-tls");
  const pem = join(work, "ca.pem");
  await writeFile(pem, web.certificatePem);

  const trusted = await run(work, "trusted", pem);
  assert.equal(trusted.get(URLS[0] as string)?.status, "success");
  assert.equal(trusted.get(URLS[1] as string)?.status, "success");
  assert.match(String(trusted.get(URLS[2] as string)?.error_message), /404/);

  const untrusted = await run(work, "untrusted", "");
  assert.equal(untrusted.get(URLS[0] as string)?.status, "failed_to_download");
  assert.match(
    String(untrusted.get(URLS[0] as string)?.error_message),
    /CERT/,
    "an unknown authority is a certificate error",
  );
  assert.equal(untrusted.get(URLS[1] as string)?.status, "success", "plain HTTP is unaffected");
});

test("a caCertificates file that is missing or holds no certificate is a config error", async () => {
  const work = await tempDir("download-tls-bad");
  const notPem = join(work, "not.pem");
  await writeFile(notPem, "hello\n");
  await assert.rejects(
    run(work, "a", join(work, "missing.pem")),
    (error: unknown) =>
      error instanceof ConfigError &&
      /download\.caCertificates: cannot read .*missing\.pem/.test(error.message),
  );
  await assert.rejects(
    run(work, "b", notPem),
    (error: unknown) =>
      error instanceof ConfigError && /not\.pem holds no PEM certificate/.test(error.message),
  );
});
