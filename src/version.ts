/** The package version, read from package.json (one level above both src/ and dist/src/). */
import { readFileSync } from "node:fs";

function findPackageJson(): { version: string } {
  for (const relative of ["../package.json", "../../package.json"]) {
    try {
      const parsed = JSON.parse(readFileSync(new URL(relative, import.meta.url), "utf8"));
      if (parsed.name === "clipcrawl") return parsed;
    } catch {
      // try the next location
    }
  }
  return { version: "0.0.0" };
}

export const VERSION: string = findPackageJson().version;
