import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/keys/db.js";
import { decide } from "../helpers/admin.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import {
  adminClient,
  bootstrapAdmin,
  type KeywardProcess,
  spawnKeyward,
} from "../helpers/hardening.js";

/** What the test knows about one key from the answers it got. */
interface Known {
  readonly id: string;
  /** The secret last returned (by create or rotate); undefined once a rotation's answer was lost. */
  secret: string | undefined;
  /** Secrets a returned rotation replaced: they must never work again. */
  readonly rotatedOut: string[];
  /** A revocation was acknowledged. */
  revoked: boolean;
  /** An operation on this key was in flight when the server died; its outcome is unknown. */
  inFlight: "rotate" | "revoke" | undefined;
  /** Acknowledged rotations, for the audit check. */
  rotations: number;
}

const KILLS = [900, 1_400, 700]; // ms of writing before each SIGKILL
const WRITERS = 4;

describe("crash safety: SIGKILL in the middle of creates, rotations and revocations", () => {
  let dir = "";
  let server: KeywardProcess | undefined;

  afterAll(async () => {
    await server?.stop("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`loses nothing it acknowledged across ${KILLS.length} SIGKILLs`, async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-hardening-crash-"));
    const database = join(dir, "keys.db");
    const root = bootstrapAdmin(database);
    const keys = new Map<string, Known>();
    let acknowledged = 0;
    server = await spawnKeyward({ database });

    for (const [cycle, writeMs] of KILLS.entries()) {
      // --- write until killed -------------------------------------------------
      const admin = adminClient(server.ports.admin, root, 10_000);
      let dying = false;
      const pick = () => {
        const candidates = [...keys.values()].filter(
          (k) => k.secret !== undefined && !k.revoked && k.inFlight === undefined,
        );
        return candidates[Math.floor(Math.random() * candidates.length)];
      };
      const writer = async () => {
        for (let op = 0; op < 10_000 && !dying; op++) {
          const roll = Math.random();
          const target = roll < 0.45 ? undefined : pick();
          try {
            if (!target) {
              const { key, secret } = await admin.createKey({
                kind: "live",
                scopes: ["sources:read"],
              });
              const id = key?.id as string;
              keys.set(id, {
                id,
                secret,
                rotatedOut: [],
                revoked: false,
                inFlight: undefined,
                rotations: 0,
              });
            } else if (roll < 0.8) {
              target.inFlight = "rotate";
              const { secret } = await admin.rotateKey({ id: target.id });
              target.rotatedOut.push(target.secret as string);
              target.secret = secret;
              target.rotations++;
              target.inFlight = undefined;
            } else {
              target.inFlight = "revoke";
              await admin.revokeKey({ id: target.id });
              target.revoked = true;
              target.inFlight = undefined;
            }
            acknowledged++;
          } catch {
            return; // the server died under this call: its outcome stays unknown
          }
        }
      };
      const writers = Promise.all(Array.from({ length: WRITERS }, writer));
      await sleep(writeMs);
      await server.stop("SIGKILL");
      dying = true;
      await writers;

      // --- the file, as the crash left it --------------------------------------
      const db = openDatabase(database);
      try {
        expect(db.pragma("integrity_check", { simple: true }), `cycle ${cycle}`).toBe("ok");
        // Every key row committed together with its audit row (one transaction).
        const orphans = db
          .prepare(
            `SELECT id FROM keys WHERE scopes = 'sources:read' AND id NOT IN
               (SELECT key_id FROM audit WHERE action = 'CreateKey' AND outcome = 'ok')`,
          )
          .pluck()
          .all();
        expect(orphans, "keys without their CreateKey audit row").toEqual([]);
        const audited = db.prepare<[string, string], number>(
          "SELECT count(*) FROM audit WHERE key_id = ? AND action = ? AND outcome = 'ok'",
        );
        for (const key of keys.values()) {
          expect(audited.pluck().get(key.id, "RotateKey")).toBeGreaterThanOrEqual(key.rotations);
          if (key.revoked) expect(audited.pluck().get(key.id, "RevokeKey")).toBeGreaterThan(0);
        }
      } finally {
        db.close();
      }

      // --- restart, and ask Check about every secret we were ever given --------
      server = await spawnKeyward({ database });
      const check = new EnvoyCheckClient(server.ports.check);
      try {
        for (const key of keys.values()) {
          for (const old of key.rotatedOut) {
            expect(await decide(check, old), `rotated-out secret of ${key.id}`).toBe(
              "invalid_token",
            );
          }
          if (key.secret === undefined) continue;
          const got = await decide(check, key.secret);
          const label = `key ${key.id} (${key.inFlight ?? (key.revoked ? "revoked" : "active")})`;
          if (key.inFlight === undefined) {
            expect(got, label).toBe(key.revoked ? "key_revoked" : "allow");
          } else if (key.inFlight === "revoke") {
            expect(["allow", "key_revoked"], label).toContain(got);
            key.revoked = got === "key_revoked";
          } else {
            // A rotation whose answer was lost: the old secret works, or it
            // was replaced by a secret nobody will ever see.
            expect(["allow", "invalid_token"], label).toContain(got);
            if (got === "invalid_token") {
              key.rotatedOut.push(key.secret);
              key.secret = undefined;
            }
          }
          key.inFlight = undefined;
        }
      } finally {
        check.close();
      }
    }
    expect(acknowledged).toBeGreaterThan(30);
    const rotated = [...keys.values()].filter((k) => k.rotations > 0).length;
    const revoked = [...keys.values()].filter((k) => k.revoked).length;
    expect(rotated).toBeGreaterThan(3);
    expect(revoked).toBeGreaterThan(3);
    console.info(
      `crash: ${acknowledged} acknowledged writes, ${keys.size} keys, ${rotated} rotated, ${revoked} revoked`,
    );
  }, 120_000);
});
