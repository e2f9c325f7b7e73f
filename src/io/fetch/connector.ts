/**
 * How the fetcher opens connections: host names resolved through a cache (c-ares, so thousands
 * of lookups in flight never queue behind image decoding on libuv's thread pool), every address
 * checked against the network guard (src/io/network-guard.ts) *after* resolution (a public name
 * may point at 169.254.169.254, the cloud metadata service), and curl-style `connectTo` rules
 * applied. A `connectTo` target is the operator's own choice, not the input's, so it is reached
 * whatever its address (a local mirror); only the URLs' own hosts are held to the guard.
 */
import { Resolver, lookup as systemLookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { isIP, type LookupFunction } from "node:net";
import { rootCertificates } from "node:tls";
import { buildConnector } from "undici";
import { isPublicAddress, PrivateAddressError, refuseLiteralAddresses } from "../network-guard.js";

export interface ConnectionPolicy {
  allowPrivateNetwork: boolean;
  /** `HOST:PORT:TARGET_HOST:TARGET_PORT`, as curl --connect-to. */
  connectTo: readonly string[];
  /** Absolute path of a PEM file whose authorities are trusted besides the system's; "" for none. */
  caCertificates: string;
  dnsCacheSeconds: number;
  connectTimeoutMs: number;
}

interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves host names, remembers the answers (and failures) for a while, keeps public ones. */
export class CachingResolver {
  private readonly cache = new Map<
    string,
    { expires: number; answer: Promise<ResolvedAddress[]> }
  >();
  private readonly resolver = new Resolver({ timeout: 5000, tries: 2 });

  constructor(
    private readonly cacheSeconds: number,
    private readonly allowPrivateNetwork: boolean,
  ) {}

  /** Usable addresses of a host name; rejects with the DNS error code or a PrivateAddressError. */
  async resolve(hostname: string): Promise<ResolvedAddress[]> {
    const addresses = await this.answer(hostname);
    if (this.allowPrivateNetwork) return addresses;
    const usable = addresses.filter((entry) => isPublicAddress(entry.address));
    if (usable.length === 0) {
      throw new PrivateAddressError(addresses[0]?.address ?? hostname, hostname);
    }
    return usable;
  }

  /** For net.connect: called with `all: true` under Happy Eyeballs, without it otherwise. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.lookupWith(options, callback, this.resolve(hostname));
  };

  /** The same, for a `connectTo` target: every address the name has, private or not. */
  readonly trustedLookup: LookupFunction = (hostname, options, callback) => {
    this.lookupWith(options, callback, this.answer(hostname));
  };

  private lookupWith(
    options: Parameters<LookupFunction>[1],
    callback: Parameters<LookupFunction>[2],
    answer: Promise<ResolvedAddress[]>,
  ): void {
    answer.then(
      (addresses) => {
        if (options.all === true) callback(null, addresses);
        else {
          const first = addresses[0] as ResolvedAddress;
          callback(null, first.address, first.family);
        }
      },
      (error: NodeJS.ErrnoException) => callback(error, "", 4),
    );
  }

  /** Every address of the name, from the cache while it is fresh. */
  private answer(hostname: string): Promise<ResolvedAddress[]> {
    const now = Date.now();
    const cached = this.cache.get(hostname);
    return cached !== undefined && cached.expires > now
      ? cached.answer
      : this.fetchAnswer(hostname, now);
  }

  private fetchAnswer(hostname: string, now: number): Promise<ResolvedAddress[]> {
    const answer = this.query(hostname);
    // A failed lookup is cached too: a dead domain often appears thousands of times in a shard.
    answer.catch(() => {});
    if (this.cacheSeconds > 0) {
      if (this.cache.size > 100_000) this.cache.clear();
      this.cache.set(hostname, { expires: now + this.cacheSeconds * 1000, answer });
    }
    return answer;
  }

  private async query(hostname: string): Promise<ResolvedAddress[]> {
    const family = isIP(hostname);
    if (family !== 0) return [{ address: hostname, family: family as 4 | 6 }];
    const [v4, v6] = await Promise.allSettled([
      this.resolver.resolve4(hostname),
      this.resolver.resolve6(hostname),
    ]);
    const addresses: ResolvedAddress[] = [
      ...(v4.status === "fulfilled"
        ? v4.value.map((address) => ({ address, family: 4 as const }))
        : []),
      ...(v6.status === "fulfilled"
        ? v6.value.map((address) => ({ address, family: 6 as const }))
        : []),
    ];
    if (addresses.length > 0) return addresses;
    // Names only the system knows (/etc/hosts, search domains) still resolve, after DNS said no.
    try {
      return (await systemLookup(hostname, { all: true })).map((entry) => ({
        address: entry.address,
        family: entry.family === 6 ? 6 : 4,
      }));
    } catch (error) {
      throw dnsError(hostname, error, v4.status === "rejected" ? v4.reason : undefined);
    }
  }
}

function dnsError(hostname: string, error: unknown, cAresError: unknown): Error {
  const code =
    (error as NodeJS.ErrnoException).code ??
    (cAresError as NodeJS.ErrnoException)?.code ??
    "ENOTFOUND";
  const wrapped = new Error(`${code} ${hostname}`) as NodeJS.ErrnoException;
  wrapped.code = code;
  return wrapped;
}

interface ConnectTarget {
  hostname: string;
  port: number;
}

export function parseConnectToRules(rules: readonly string[]): Map<string, ConnectTarget> {
  const targets = new Map<string, ConnectTarget>();
  for (const rule of rules) {
    const [host, port, targetHost, targetPort] = rule.split(":");
    targets.set(`${host?.toLowerCase()}:${port}`, {
      hostname: targetHost as string,
      port: Number(targetPort),
    });
  }
  return targets;
}

/** undici's connector with the policy above; TLS still verifies the certificate of the URL's host. */
export function policyConnector(policy: ConnectionPolicy, resolver: CachingResolver) {
  const options = (lookup: LookupFunction) =>
    ({
      timeout: policy.connectTimeoutMs,
      lookup,
      // `ca` replaces Node's bundled roots, so they are passed along with the extra authorities.
      ...(policy.caCertificates === ""
        ? {}
        : { ca: [...rootCertificates, readFileSync(policy.caCertificates, "utf8")] }),
    }) as buildConnector.BuildOptions;
  const connect = refuseLiteralAddresses(
    policy.allowPrivateNetwork,
    buildConnector(options(resolver.lookup)),
  );
  const connectTrusted = buildConnector(options(resolver.trustedLookup));
  const rules = parseConnectToRules(policy.connectTo);
  return (options: buildConnector.Options, callback: buildConnector.Callback): void => {
    const port =
      options.port === "" ? (options.protocol === "https:" ? "443" : "80") : options.port;
    const rule = rules.get(`${options.hostname.toLowerCase()}:${port}`);
    if (rule === undefined) connect(options, callback);
    else connectTrusted(redirectTo(options, rule), callback);
  };
}

function redirectTo(options: buildConnector.Options, rule: ConnectTarget): buildConnector.Options {
  // `host` keeps the URL's host, from which undici takes the TLS server name.
  return { ...options, hostname: rule.hostname, port: String(rule.port) };
}
