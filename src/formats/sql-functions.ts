/**
 * The two values the filter query needs that SQL cannot compute the way the rest of clipcrawl
 * does, registered as DuckDB scalar functions so the whole shard stays one query:
 *
 * - `clipcrawl_pair_hash(url, text)`: LAION's `hash` column. LAION's is an int64 hash of
 *   URL + TEXT (murmur3); ours is the first 64 bits of extract's 128-bit (url, text) pair hash
 *   (pair-hash.ts), as a signed int64 like LAION's, so equal hashes mean the pair extract
 *   deduplicated on. DuckDB's own `hash()` is not promised stable across its versions.
 * - `clipcrawl_url_domains(url)`: the URL's host as the WHATWG URL parser gives it (lower case,
 *   punycode, as the domain blocklist's entries are normalised and as download matches its
 *   blocklist) followed by every domain above it: `a.b.example` → [a.b.example, b.example,
 *   example]. One equality join against the list then covers subdomains, whatever its size.
 *   NULL when the URL does not parse.
 *
 * Both are pure, so registering them again (the registration is database-wide) is harmless.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { duckdbModule } from "../io/parquet.js";
import { HASH_LANES, hashPair } from "./pair-hash.js";

export const PAIR_HASH_FUNCTION = "clipcrawl_pair_hash";
export const URL_DOMAINS_FUNCTION = "clipcrawl_url_domains";

const IPV4 = /^\d+\.\d+\.\d+\.\d+$/;

/** The first 64 bits of the pair hash as a signed int64, as LAION's `hash` column is typed. */
function toInt64(lanes: Uint32Array): bigint {
  return BigInt.asIntN(64, (BigInt(lanes[0] ?? 0) << 32n) | BigInt(lanes[1] ?? 0));
}

/** The URL's host and the domains above it, nearest first; null when it is not a URL. */
export function urlDomains(url: string): string[] | null {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    // Not a URL (tars from elsewhere can carry anything): no host, so no domain to block.
    return null;
  }
  const domains = [host];
  // An IP address has no domains above it.
  if (host.startsWith("[") || IPV4.test(host)) return domains;
  for (let dot = host.indexOf("."); dot >= 0; dot = host.indexOf(".", dot + 1)) {
    domains.push(host.slice(dot + 1));
  }
  return domains;
}

export async function registerFilterFunctions(connection: DuckDBConnection): Promise<void> {
  const { BIGINT, DuckDBScalarFunction, LIST, listValue, VARCHAR } = duckdbModule();
  const lanes = new Uint32Array(HASH_LANES);
  connection.registerScalarFunction(
    DuckDBScalarFunction.create({
      name: PAIR_HASH_FUNCTION,
      returnType: BIGINT,
      parameterTypes: [VARCHAR, VARCHAR],
      specialHandling: true,
      mainFunction: (_info, input, output) => {
        const urls = input.getColumnVector(0);
        const texts = input.getColumnVector(1);
        for (let row = 0; row < input.rowCount; row++) {
          const url = urls.getItem(row);
          if (typeof url !== "string") {
            output.setItem(row, null);
            continue;
          }
          const text = texts.getItem(row);
          hashPair(url, typeof text === "string" ? text : "", lanes, 0);
          output.setItem(row, toInt64(lanes));
        }
        output.flush();
      },
    }),
  );
  connection.registerScalarFunction(
    DuckDBScalarFunction.create({
      name: URL_DOMAINS_FUNCTION,
      returnType: LIST(VARCHAR),
      parameterTypes: [VARCHAR],
      specialHandling: true,
      mainFunction: (_info, input, output) => {
        const urls = input.getColumnVector(0);
        for (let row = 0; row < input.rowCount; row++) {
          const url = urls.getItem(row);
          const domains = typeof url === "string" ? urlDomains(url) : null;
          output.setItem(row, domains === null ? null : listValue(domains));
        }
        output.flush();
      },
    }),
  );
}
