/**
 * Debian's Chromium for the browser tests (playwright-core drives it): where it is, the flags a
 * headless run in CI needs, and why a test is skipped when it is missing outside CI.
 */
import { existsSync } from "node:fs";

export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

/**
 * For pages that draw with WebGL (the Atlas map): with the GPU off, Chromium gives WebGL only
 * through SwiftShader, its software rasteriser, and only when asked for it.
 */
export const WEBGL_CHROMIUM_ARGS = [
  ...CHROMIUM_ARGS,
  "--use-angle=swiftshader",
  "--enable-unsafe-swiftshader",
];

/** false when the browser is there, or in CI (where a missing browser must fail); else why not. */
export const chromiumSkipReason: string | false =
  existsSync(CHROMIUM) || process.env.CI
    ? false
    : `${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium) to run the browser tests`;
