/**
 * How the fetcher opens connections: host names resolved through a cache (c-ares, so thousands
 * of lookups in flight never queue behind image decoding on libuv's thread pool), every address
 * checked against the private-address policy *after* resolution (a public name may point at
 * 169.254.169.254, the cloud metadata service), and curl-style `connectTo` rules applied.
 */
import { Resolver, lookup as systemLookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { rootCertificates } from "node:tls";
import { buildConnector } from "undici";
import { ClipcrawlError } from "../../errors.js";

export interface ConnectionPolicy {
  allowPrivateAddresses: boolean;
  /** `HOST:PORT:TARGET_HOST:TARGET_PORT`, as curl --connect-to. */
  connectTo: readonly string[];
  /** Absolute path of a PEM file whose authorities are trusted besides the system's; "" for none. */
  caCertificates: string;
  dnsCacheSeconds: number;
  connectTimeoutMs: number;
}

/** Refused because the address is private, loopback, link-local or otherwise not public. */
export class PrivateAddressError extends ClipcrawlError {
  constructor(address: string) {
    super("CC_PRIVATE_ADDRESS", `private address ${address} refused`);
    this.name = "PrivateAddressError";
  }
}

/** Addresses no crawler should reach: RFC 1918, loopback, link-local, CGNAT, multicast, … */
const nonPublicAddresses = (() => {
  const list = new BlockList();
  for (const [network, prefix] of [
    ["0.0.0.0", 8],
    ["10.0.0.0", 8],
    ["100.64.0.0", 10],
    ["127.0.0.0", 8],
    ["169.254.0.0", 16],
    ["172.16.0.0", 12],
    ["192.0.0.0", 24],
    ["192.0.2.0", 24],
    ["192.168.0.0", 16],
    ["198.18.0.0", 15],
    ["198.51.100.0", 24],
    ["203.0.113.0", 24],
    ["224.0.0.0", 4],
    ["240.0.0.0", 4],
  ] as const) {
    list.addSubnet(network, prefix, "ipv4");
  }
  for (const [network, prefix] of [
    ["::", 128],
    ["::1", 128],
    ["64:ff9b::", 96],
    ["100::", 64],
    ["2001:db8::", 32],
    ["fc00::", 7],
    ["fe80::", 10],
    ["ff00::", 8],
  ] as const) {
    list.addSubnet(network, prefix, "ipv6");
  }
  return list;
})();

export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return !nonPublicAddresses.check(address, family === 4 ? "ipv4" : "ipv6");
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
    private readonly allowPrivateAddresses: boolean,
  ) {}

  /** Usable addresses of a host name; rejects with the DNS error code or a PrivateAddressError. */
  async resolve(hostname: string): Promise<ResolvedAddress[]> {
    const now = Date.now();
    const cached = this.cache.get(hostname);
    const answer =
      cached !== undefined && cached.expires > now
        ? cached.answer
        : this.fetchAnswer(hostname, now);
    const addresses = await answer;
    const usable = addresses.filter((entry) => this.allows(entry.address));
    if (usable.length === 0) throw new PrivateAddressError(addresses[0]?.address ?? hostname);
    return usable;
  }

  allows(address: string): boolean {
    return this.allowPrivateAddresses || isPublicAddress(address);
  }

  /** For net.connect: called with `all: true` under Happy Eyeballs, without it otherwise. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.resolve(hostname).then(
      (addresses) => {
        if (options.all === true) callback(null, addresses);
        else {
          const first = addresses[0] as ResolvedAddress;
          callback(null, first.address, first.family);
        }
      },
      (error: NodeJS.ErrnoException) => callback(error, "", 4),
    );
  };

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
  const connect = buildConnector({
    timeout: policy.connectTimeoutMs,
    lookup: resolver.lookup,
    // `ca` replaces Node's bundled roots, so they are passed along with the extra authorities.
    ...(policy.caCertificates === ""
      ? {}
      : { ca: [...rootCertificates, readFileSync(policy.caCertificates, "utf8")] }),
  } as buildConnector.BuildOptions);
  const rules = parseConnectToRules(policy.connectTo);
  return (options: buildConnector.Options, callback: buildConnector.Callback): void => {
    const port =
      options.port === "" ? (options.protocol === "https:" ? "443" : "80") : options.port;
    const rule = rules.get(`${options.hostname.toLowerCase()}:${port}`);
    const target = rule === undefined ? options : redirectTo(options, rule);
    // net.connect skips the lookup for an IP literal, so the policy is checked here for those.
    const literal = target.hostname.replace(/^\[|\]$/g, "");
    if (isIP(literal) !== 0 && !resolver.allows(literal)) {
      callback(new PrivateAddressError(literal), null);
      return;
    }
    connect(target, callback);
  };
}

function redirectTo(options: buildConnector.Options, rule: ConnectTarget): buildConnector.Options {
  // `host` keeps the URL's host, from which undici takes the TLS server name.
  return { ...options, hostname: rule.hostname, port: String(rule.port) };
}
