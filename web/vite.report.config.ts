/**
 * Builds the `clipcrawl stats` report's script into web/dist/report/stats-report.js: one IIFE
 * file with Observable Plot and the statistics page's charts in it, which the command inlines
 * into the HTML next to the JSON it draws (no network, no other file). Runs after the UI's
 * build (vite.config.ts empties web/dist).
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  build: {
    outDir: "dist/report",
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: false,
    lib: {
      entry: fileURLToPath(new URL("./src/report/stats-report.ts", import.meta.url)),
      formats: ["iife"],
      name: "clipcrawlStatsReport",
      fileName: () => "stats-report.js",
    },
  },
});
