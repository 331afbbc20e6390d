import ms from "ms";

/** Milliseconds of a duration such as 90d or 12h; undefined when it is not one. */
export function durationMs(value: string): number | undefined {
  const parsed = ms(value as ms.StringValue) as number | undefined;
  return typeof parsed === "number" && Number.isFinite(parsed) && parsed > 0 ? parsed : undefined;
}
