/** The longest name, owner or tenant, in characters (Unicode code points). */
export const MAX_IDENTITY_CHARS = 256;

/**
 * The identity rule: `name`, `owner` and `tenant` are Unicode text without
 * control characters (Cc: U+0000–U+001F, U+007F–U+009F), line or paragraph
 * separators (U+2028/U+2029) or unpaired surrogates, and at most
 * `maxChars` characters (default {@link MAX_IDENTITY_CHARS}). Any other text (CJK, emoji,
 * accents) is allowed: these values end up in upstream headers, logs and
 * terminals, where a control character could split a header, forge a log
 * line or rewrite a terminal, while the transports encode everything else.
 * Returns what is wrong, or undefined when the value is fine.
 */
export function identityTextProblem(
  value: string,
  maxChars: number = MAX_IDENTITY_CHARS,
): string | undefined {
  // In a `u` regex \p{Cs} matches only a surrogate that is not half of a pair.
  const bad = /[\p{Cc}\p{Cs}\u2028\u2029]/u.exec(value)?.[0];
  if (bad !== undefined) {
    const code = bad.codePointAt(0) as number;
    const at = `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
    if (code === 0x2028 || code === 0x2029) return `contains a line or paragraph separator (${at})`;
    if (code >= 0xd800 && code <= 0xdfff) return `contains an unpaired surrogate (${at})`;
    return `contains a control character (${at})`;
  }
  // UTF-16 units never number fewer than code points: count only when it could matter.
  if (value.length > maxChars && [...value].length > maxChars) {
    return `is longer than ${maxChars} characters`;
  }
  return undefined;
}
