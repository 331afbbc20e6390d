import { type MatchFunction, match } from "path-to-regexp";

/** The run path worker keys are confined to, unless the policy names another. */
export const DEFAULT_WORKER_RUN_PATH =
  "/experiments/{experiment}/variations/{variation}/runs/{run}";

const PARAM = /\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}/g;

/**
 * Compiles a DESIGN path template (`{name}` = one segment, `{name...}` = the
 * rest) into a path-to-regexp matcher. Literal text is escaped, so nothing in
 * it has a pattern meaning. Matching is case-sensitive, like Envoy's routes:
 * a differently-cased path falls through to the policy default instead of
 * borrowing a rule meant for another route.
 */
export function compileTemplate(
  template: string,
  options: { prefix?: boolean } = {},
): MatchFunction<Record<string, string | string[]>> {
  if (!template.startsWith("/"))
    throw new Error(`path template ${JSON.stringify(template)} must start with "/"`);
  let pattern = "";
  let last = 0;
  for (const param of template.matchAll(PARAM)) {
    pattern += escapeLiteral(template.slice(last, param.index));
    pattern += param[2] ? `*${param[1]}` : `:${param[1]}`;
    last = param.index + param[0].length;
  }
  const rest = template.slice(last);
  if (/[{}]/.test(rest) || /[{}]/.test(pattern.replace(/\\./g, ""))) {
    throw new Error(`path template ${JSON.stringify(template)} has a malformed {parameter}`);
  }
  pattern += escapeLiteral(rest);
  return match(pattern, { sensitive: true, end: !options.prefix });
}

function escapeLiteral(text: string): string {
  if (/[{}]/.test(text))
    throw new Error(`path template segment ${JSON.stringify(text)} has a malformed {parameter}`);
  return text.replace(/[:*?+()[\]!\\]/g, "\\$&");
}
