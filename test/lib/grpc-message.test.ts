import { describe, expect, it } from "vitest";
import { grpcMessage } from "../../src/lib/grpc-message.js";

describe("grpcMessage", () => {
  it("keeps printable ASCII, encodes '%' and everything else as percent-encoded UTF-8", () => {
    expect(grpcMessage("send admin calls to the primary at http://p:9192")).toBe(
      "send admin calls to the primary at http://p:9192",
    );
    expect(grpcMessage("100% ready\nnext")).toBe("100%25 ready%0Anext");
    expect(grpcMessage("clé 🔑")).toBe("cl%C3%A9 %F0%9F%94%91");
  });

  it("decodes back to the text with decodeURIComponent, as clients read it", () => {
    for (const text of ["a % b", "tab\there", "ünïcødé ✓", "plain"]) {
      expect(decodeURIComponent(grpcMessage(text))).toBe(text);
    }
  });
});
