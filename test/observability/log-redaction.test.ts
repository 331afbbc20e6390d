import { describe, expect, it } from "vitest";
import { createLogger, decisionLogger } from "../../src/lib/log.js";
import { LogCapture } from "../helpers/keyward.js";

// The last line of defence: an authorization value that reaches a log call
// by mistake is censored, by the root logger and by the deny-line child
// (which censors fewer paths, see decisionLogger).
describe("log redaction", () => {
  const token = "sk_live_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef";

  it("censors authorization at the top level, under err and one level down in the root logger", () => {
    const capture = new LogCapture();
    const log = createLogger({ destination: capture });
    log.info({ authorization: token }, "top");
    log.info({ err: { authorization: token } }, "err");
    log.info({ request: { authorization: token } }, "nested");
    log.info({ headers: { authorization: token } }, "headers");
    expect(capture.lines).toHaveLength(4);
    expect(capture.text).not.toContain(token);
    expect(capture.text.match(/\[redacted\]/g)).toHaveLength(4);
  });

  it("censors authorization at the top level and under err in the deny-line child, keeping the root's fields", () => {
    const capture = new LogCapture();
    const log = decisionLogger(createLogger({ destination: capture }), "check");
    log.info({ authorization: token, error: "invalid_token" }, "check denied");
    log.error({ err: { authorization: token } }, "check failed closed");
    expect(capture.text).not.toContain(token);
    const [denied, failed] = capture.records;
    expect(denied).toMatchObject({
      service: "keyward",
      name: "check",
      authorization: "[redacted]",
      error: "invalid_token",
    });
    expect(typeof denied?.time).toBe("string");
    expect(new Date(denied?.time as string).toISOString()).toBe(denied?.time);
    expect(failed).toMatchObject({ err: { authorization: "[redacted]" } });
  });
});
