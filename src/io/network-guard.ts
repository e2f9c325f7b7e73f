/**
 * The network guard of everything that fetches a URL it was given (download's image URLs,
 * extract's WAT URLs and path listings, serve's image_url queries, model fetch's hub): a crafted
 * URL must not make the crawler reach its own network. Only globally routable unicast addresses are allowed; private, loopback, link-local,
 * CGNAT, multicast, documentation, benchmarking, IPv4-mapped, NAT64, 6to4, unique-local and the
 * other IANA special-purpose ranges are refused (ipaddr.js keeps that table). The check runs on
 * the address a connection is actually opened to, after DNS resolution, for every connection
 * (so every redirect hop): a name that resolves to 169.254.169.254, or a second answer that
 * rebinds to 127.0.0.1, is refused as the literal is. `--allow-private-network` turns it off.
 */
import { lookup as systemLookup } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import ipaddr from "ipaddr.js";
import type { buildConnector, Dispatcher } from "undici";
import { ClipcrawlError } from "../errors.js";

/** Refused because the address is private, loopback, link-local or otherwise not public. */
export class PrivateAddressError extends ClipcrawlError {
  constructor(address: string, hostname?: string) {
    const via = hostname === undefined || hostname === address ? "" : ` (${hostname})`;
    super(
      "CC_PRIVATE_ADDRESS",
      `private address ${address}${via} refused (${addressRange(address)}; --allow-private-network allows it)`,
    );
    this.name = "PrivateAddressError";
  }
}

const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR("2000::/3");

/** ipaddr.js's name of the address's range: "unicast" for a public one, "invalid" for no address. */
export function addressRange(address: string): string {
  if (!ipaddr.isValid(address) || isIP(address) === 0) return "invalid";
  const parsed = ipaddr.parse(address);
  const range = parsed.range();
  // IANA has allocated only 2000::/3 for global unicast; ipaddr.js calls the rest "unicast" too.
  if (range === "unicast" && parsed.kind() === "ipv6" && !parsed.match(GLOBAL_UNICAST_V6)) {
    return "unallocated";
  }
  return range;
}

export function isPublicAddress(address: string): boolean {
  return addressRange(address) === "unicast";
}

interface LookupAddress {
  address: string;
  family: number;
}

/**
 * A `lookup` for net.connect that passes on only the addresses the policy allows; a host name
 * with none left fails with a PrivateAddressError.
 */
export function guardedLookup(
  allowPrivateNetwork: boolean,
  lookup: LookupFunction = systemLookup as LookupFunction,
): LookupFunction {
  if (allowPrivateNetwork) return lookup;
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (error, answer) => {
      if (error !== null) {
        callback(error, "", 4);
        return;
      }
      const addresses = answer as unknown as LookupAddress[];
      const allowed = addresses.filter((entry) => isPublicAddress(entry.address));
      const first = allowed[0];
      if (first === undefined) {
        callback(new PrivateAddressError(addresses[0]?.address ?? hostname, hostname), "", 4);
      } else if (options.all === true) {
        callback(null, allowed as never);
      } else {
        callback(null, first.address, first.family);
      }
    });
  };
}

/**
 * Wraps an undici connector so an IP literal (which net.connect never looks up) is checked
 * before the connection is opened; host names are checked by the connector's `lookup`.
 */
export function refuseLiteralAddresses(
  allowPrivateNetwork: boolean,
  connect: buildConnector.connector,
): buildConnector.connector {
  if (allowPrivateNetwork) return connect;
  return (options, callback) => {
    const literal = options.hostname.replace(/^\[|\]$/g, "");
    if (isIP(literal) !== 0 && !isPublicAddress(literal)) {
      callback(new PrivateAddressError(literal), null);
      return;
    }
    connect(options, callback);
  };
}

const guardedDispatchers = new Map<boolean, Dispatcher>();

/**
 * The keep-alive agent of clipcrawl's own downloads of given URLs (WAT files, listings, models):
 * redirects followed (up to 5), every connection held to the policy. undici is loaded here, on
 * the first URL: it takes longer to load than a small local extract takes to run.
 */
export async function guardedHttpDispatcher(allowPrivateNetwork: boolean): Promise<Dispatcher> {
  let dispatcher = guardedDispatchers.get(allowPrivateNetwork);
  if (dispatcher === undefined) {
    const { Agent, buildConnector, interceptors } = await import("undici");
    const connect = buildConnector({
      lookup: guardedLookup(allowPrivateNetwork),
    } as buildConnector.BuildOptions);
    dispatcher = new Agent({
      connections: 16,
      connect: refuseLiteralAddresses(allowPrivateNetwork, connect),
    }).compose(interceptors.redirect({ maxRedirections: 5 }));
    guardedDispatchers.set(allowPrivateNetwork, dispatcher);
  }
  return dispatcher;
}

/** The PrivateAddressError behind a failed request, if that is why it failed. */
export function privateAddressRefusal(error: unknown): PrivateAddressError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    if (current instanceof PrivateAddressError) return current;
    current = current.cause;
  }
  return undefined;
}
