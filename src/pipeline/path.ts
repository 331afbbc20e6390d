/** The path the policy judges, or why the request target names no route. */
export type RoutePath =
  | { readonly path: string; readonly problem?: undefined }
  | { readonly path?: undefined; readonly problem: string };

/**
 * The path the policy judges: the request target without its query string.
 * A target is refused (matches no rule: fail closed, a 403, never a fault)
 * when keyward and the upstream could disagree about which route it names,
 * or when keyward cannot read it at all:
 *
 * - dot segments, encoded slashes, backslashes or dots, control characters,
 *   or no leading slash (ambiguous);
 * - a raw `#` before the query: no client sends a fragment, and a proxy that
 *   forwards one leaves it to each server whether the rest is path or not;
 * - a `%` not followed by two hex digits, or escapes that are not UTF-8
 *   (`%zz`, `%ff`): the route templates cannot be matched against them.
 */
export function describeRoutePath(target: string): RoutePath {
  const query = target.indexOf("?");
  const path = query === -1 ? target : target.slice(0, query);
  if (!path.startsWith("/")) return { problem: "path does not start with /" };
  if (path.includes("#")) return { problem: "path holds a raw #" };
  if (AMBIGUOUS.test(path)) return { problem: "ambiguous path (dot segment or encoded separator)" };
  if (path.includes("%")) {
    try {
      decodeURIComponent(path);
    } catch {
      return { problem: "path cannot be percent-decoded" };
    }
  }
  return { path };
}

/** {@link describeRoutePath}'s path, or undefined when the target names no route. */
export function routePath(target: string): string | undefined {
  return describeRoutePath(target).path;
}

// Control characters, backslash, %2e/%2f/%5c/%00 in any case, and "." or ".."
// as a whole segment.
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
const AMBIGUOUS = /[\x00-\x1f\x7f\\]|%(?:2[ef]|5c|00)|\/\.\.?(?:\/|$)/i;
