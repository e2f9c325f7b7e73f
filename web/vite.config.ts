/**
 * Builds the web UI into web/dist: static files with relative asset paths, so `clipcrawl serve`
 * can mount them at any prefix and the page works offline (no CDN, nothing fetched at run time
 * but the API).
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: true,
  },
});
