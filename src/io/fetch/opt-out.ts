/**
 * Opt-outs: X-Robots-Tag directives that forbid AI use, read as img2dataset reads them, so sites
 * that opted out of img2dataset are out of clipcrawl too (download's blocklist of URLs, domains
 * and digests: src/formats/download-blocklist.ts). An opted-out sample is a row with status
 * `opted_out`, never an error.
 */

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
