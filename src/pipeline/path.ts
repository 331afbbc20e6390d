/**
 * The path the policy judges: the request target without query or fragment.
 * Undefined when the path is ambiguous, i.e. when keyward and the upstream
 * could disagree about which route it names: dot segments, encoded slashes,
 * backslashes or dots, control characters, or no leading slash. Such a path
 * matches no rule (fail closed) instead of being resolved one way here and
 * another way upstream.
 */
export function routePath(target: string): string | undefined {
  let end = target.length;
  const query = target.indexOf("?");
  if (query !== -1) end = query;
  const fragment = target.indexOf("#");
  if (fragment !== -1 && fragment < end) end = fragment;
  const path = end === target.length ? target : target.slice(0, end);
  if (!path.startsWith("/")) return undefined;
  if (AMBIGUOUS.test(path)) return undefined;
  return path;
}

// Control characters, backslash, %2e/%2f/%5c/%00 in any case, and "." or ".."
// as a whole segment.
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
const AMBIGUOUS = /[\x00-\x1f\x7f\\]|%(?:2[ef]|5c|00)|\/\.\.?(?:\/|$)/i;
