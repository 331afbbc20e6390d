import { describe, expect, it } from "vitest";
import { whenReady } from "../../src/lib/maybe-async.js";

describe("whenReady", () => {
  it("calls next at once for a ready value and returns its result, not a promise", () => {
    const result = whenReady(2, (n) => n * 3);
    expect(result).toBe(6);
  });

  it("calls next when a promise resolves, and onRejected when it rejects", async () => {
    await expect(whenReady(Promise.resolve(2), (n) => n * 3)).resolves.toBe(6);
    const handled = whenReady(
      Promise.reject(new Error("boom")),
      () => "next",
      (cause) => `handled ${(cause as Error).message}`,
    );
    await expect(handled).resolves.toBe("handled boom");
    await expect(whenReady(Promise.reject(new Error("passes on")), () => "next")).rejects.toThrow(
      "passes on",
    );
  });
});
