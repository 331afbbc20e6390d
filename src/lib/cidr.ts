import { BlockList, isIPv4, isIPv6 } from "node:net";

/** Answers whether a client address lies in any of a fixed set of networks. */
export interface NetworkMatcher {
  /** The networks, as given (normalised `address/prefix`). */
  readonly cidrs: readonly string[];
  /** False for an unknown (undefined or unparsable) address: no address, no match. */
  allows(address: string | undefined): boolean;
}

/**
 * What is wrong with one CIDR (`10.0.0.0/8`, `2001:db8::/32`, or a bare
 * address meaning one host), or undefined when it is one.
 */
export function cidrProblem(cidr: string): string | undefined {
  return parseCidr(cidr) === undefined
    ? `${JSON.stringify(cidr)} is not an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or 2001:db8::/32`
    : undefined;
}

/** A matcher over valid CIDRs (check them with {@link cidrProblem} first; invalid ones match nothing). */
export function networkMatcher(cidrs: readonly string[]): NetworkMatcher {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const parsed = parseCidr(cidr);
    if (parsed) list.addSubnet(parsed.address, parsed.prefix, parsed.family);
  }
  return {
    cidrs,
    allows(address) {
      const client = clientAddress(address);
      return client !== undefined && list.check(client.address, client.family);
    },
  };
}

/**
 * An address as a socket or a proxy reports it: IPv4, IPv6, or IPv4 mapped
 * into IPv6 (`::ffff:192.0.2.1`, what a dual-stack socket reports for an
 * IPv4 client), which is matched as the IPv4 address it is.
 */
function clientAddress(
  address: string | undefined,
): { address: string; family: "ipv4" | "ipv6" } | undefined {
  if (address === undefined) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped !== undefined && isIPv4(mapped)) return { address: mapped, family: "ipv4" };
  if (isIPv4(address)) return { address, family: "ipv4" };
  if (isIPv6(address)) return { address, family: "ipv6" };
  return undefined;
}

function parseCidr(
  cidr: string,
): { address: string; prefix: number; family: "ipv4" | "ipv6" } | undefined {
  const [address = "", bits, extra] = cidr.split("/");
  if (extra !== undefined) return undefined;
  const family = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : undefined;
  if (family === undefined) return undefined;
  const max = family === "ipv4" ? 32 : 128;
  if (bits !== undefined && !/^\d{1,3}$/.test(bits)) return undefined;
  const prefix = bits === undefined ? max : Number(bits);
  return prefix <= max ? { address, prefix, family } : undefined;
}
