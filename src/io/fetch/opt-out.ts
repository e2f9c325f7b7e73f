/**
 * Opt-outs: X-Robots-Tag directives that forbid AI use (read as img2dataset reads them, so sites
 * that opted out of img2dataset are out of clipcrawl too) and a blocklist of URLs and domains.
 * An opted-out sample is a row with status `opted_out`, never an error.
 */
import { readFile } from "node:fs/promises";
import { InputError } from "../../errors.js";

/** User-agent tokens whose X-Robots-Tag directives apply to us. */
const OUR_AGENT_TOKENS = ["clipcrawl", "img2dataset"];

/**
 * The first disallowed directive in the X-Robots-Tag header values, if any. A value is
 * `directive, directive` or `agent: directive, …`; only agent-less values and ours count.
 */
export function disallowingDirective(
  headerValues: readonly string[],
  disallowed: readonly string[],
  userAgentToken = "",
): string | undefined {
  if (disallowed.length === 0) return undefined;
  const wanted = new Set(disallowed.map((directive) => directive.toLowerCase()));
  const ourTokens = new Set([...OUR_AGENT_TOKENS, userAgentToken.toLowerCase()].filter(Boolean));
  for (const value of headerValues) {
    const colon = value.indexOf(":");
    const agent = colon >= 0 ? value.slice(0, colon).trim().toLowerCase() : undefined;
    if (agent !== undefined && !ourTokens.has(agent)) continue;
    const directives = value.slice(colon + 1).split(",");
    for (const directive of directives) {
      const normalised = directive.trim().toLowerCase();
      if (wanted.has(normalised)) return normalised;
    }
  }
  return undefined;
}

/** URLs and domains (with their subdomains) whose images are not fetched. */
export class Blocklist {
  private readonly urls = new Set<string>();
  private readonly domains = new Set<string>();

  static async load(path: string): Promise<Blocklist> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      throw new InputError("CC_BLOCKLIST", path, `cannot read the blocklist: ${String(error)}`);
    }
    return Blocklist.parse(text);
  }

  /** One entry a line: a URL (`https://…`) or a domain; `#` starts a comment. */
  static parse(text: string): Blocklist {
    const list = new Blocklist();
    for (const line of text.split(/\r?\n/)) {
      const entry = line.replace(/#.*/, "").trim();
      if (entry === "") continue;
      if (entry.includes("://")) {
        const url = URL.canParse(entry) ? new URL(entry).href : entry;
        list.urls.add(url);
      } else list.domains.add(entry.toLowerCase().replace(/^\*?\./, ""));
    }
    return list;
  }

  get size(): number {
    return this.urls.size + this.domains.size;
  }

  /** Why the URL is blocked (`blocklisted url`, `blocklisted domain`), or undefined. */
  match(url: URL): string | undefined {
    if (this.urls.has(url.href)) return "blocklisted url";
    let host = url.hostname.toLowerCase();
    for (;;) {
      if (this.domains.has(host)) return "blocklisted domain";
      const dot = host.indexOf(".");
      if (dot < 0) return undefined;
      host = host.slice(dot + 1);
    }
  }
}
