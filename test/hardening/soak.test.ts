import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import {
  adminClient,
  bootstrapAdmin,
  type KeywardProcess,
  outcome,
  rssBytes,
  spawnKeyward,
  WireCheckClient,
} from "../helpers/hardening.js";

// Bounded by work done, not by wall time: the soak ends when both amounts
// are reached, however busy the machine is (time belongs in the bench).
const SOAK_CHECKS = Number(process.env.SOAK_CHECKS ?? 40_000);
const SOAK_ADMIN_WRITES = Number(process.env.SOAK_ADMIN_WRITES ?? 200);
/** RSS is compared from here on (start-up, JIT and caches have settled). */
const WARMUP_CHECKS = Math.floor(SOAK_CHECKS / 5);
const CHECKS_IN_FLIGHT = 16;
const ADMIN_WRITERS = 2;
const LIVE_KEYS = 40;
const MAX_RSS_GROWTH = 100 * 1024 * 1024;

/** One secret the admin API handed out, and when (test clock) it stopped being valid. */
interface Secret {
  readonly keyId: string;
  readonly value: string;
  /** When the call that ends it (rotate or revoke) was sent. */
  endSentAt?: number;
  /** When that call returned: every Check sent later must be denied with `endCode`. */
  endedAt?: number;
  endCode?: "invalid_token" | "key_revoked";
  busy: boolean;
}

interface Wrong {
  readonly secret: "live" | "dead" | "junk";
  readonly expected: string;
  readonly got: string;
  readonly sentAt: number;
  readonly endedAt: number | undefined;
}

describe(`soak: ${SOAK_CHECKS} Checks while ${SOAK_ADMIN_WRITES} keys are created, rotated and revoked`, () => {
  let dir = "";
  let server: KeywardProcess | undefined;
  let check: WireCheckClient | undefined;

  afterAll(async () => {
    check?.close();
    await server?.stop("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    "makes no wrong decision and keeps its memory bounded",
    async () => {
      dir = mkdtempSync(join(tmpdir(), "keyward-soak-"));
      const database = join(dir, "keys.db");
      const root = bootstrapAdmin(database);
      const kw = await spawnKeyward({ database });
      server = kw;
      const client = new WireCheckClient(kw.ports.check);
      check = client;
      const admin = adminClient(kw.ports.admin, root, 10_000);

      const live: Secret[] = [];
      const dead: Secret[] = [];
      const wrong: Wrong[] = [];
      const stats = { checks: 0, allows: 0, denies: 0, checkErrors: 0, admin: 0, adminErrors: 0 };
      const latencies: number[] = [];
      /** RSS samples, each with the number of Checks answered when it was taken. */
      const rss: { checks: number; bytes: number }[] = [];
      let lastAdminError = "";

      const started = performance.now();
      const now = () => performance.now() - started;
      const running = () => stats.checks < SOAK_CHECKS || stats.admin < SOAK_ADMIN_WRITES;

      // --- admin churn --------------------------------------------------------
      const create = async () => {
        const { key, secret } = await admin.createKey({ kind: "live", scopes: ["sources:read"] });
        live.push({ keyId: key?.id as string, value: secret, busy: false });
      };
      const end = async (how: "rotate" | "revoke") => {
        const idle = live.filter((s) => !s.busy);
        const target = idle[Math.floor(Math.random() * idle.length)];
        if (!target) return create();
        target.busy = true;
        target.endCode = how === "rotate" ? "invalid_token" : "key_revoked";
        target.endSentAt = now();
        let successor: string | undefined;
        if (how === "rotate") successor = (await admin.rotateKey({ id: target.keyId })).secret;
        else await admin.revokeKey({ id: target.keyId });
        target.endedAt = now();
        live.splice(live.indexOf(target), 1);
        dead.push(target);
        if (dead.length > 2_000) dead.splice(0, dead.length - 2_000);
        if (successor) live.push({ keyId: target.keyId, value: successor, busy: false });
      };
      const churn = async () => {
        while (running()) {
          const roll = Math.random();
          try {
            if (live.length < LIVE_KEYS / 2 || roll < 0.3) await create();
            else await end(roll < 0.65 ? "rotate" : "revoke");
            stats.admin++;
          } catch (error) {
            stats.adminErrors++;
            lastAdminError = String(error);
            await sleep(50);
          }
          if (live.length > LIVE_KEYS) await sleep(5);
        }
      };

      // --- Check load ---------------------------------------------------------
      const JUNK: [string | undefined, string][] = [
        [`sk_live_${"0".repeat(16)}_${"1".repeat(48)}`, "invalid_token"],
        ["sk_live_nope", "invalid_token"],
        ["a.b.c", "invalid_token"],
        [undefined, "missing_credential"],
      ];
      const checker = async () => {
        while (running()) {
          const roll = Math.random();
          const pool = roll < 0.65 || dead.length === 0 ? live : roll < 0.85 ? dead : undefined;
          const secret = pool?.[Math.floor(Math.random() * pool.length)];
          if (pool && !secret) {
            await sleep(5);
            continue;
          }
          const junk = JUNK[Math.floor(Math.random() * JUNK.length)] as [
            string | undefined,
            string,
          ];
          const token = secret ? secret.value : junk[0];
          const sentAt = now();
          let got: string;
          let keyId: string | undefined;
          try {
            const response = await client.send(
              {
                method: "GET",
                path: "/api/v1/sources",
                headers: token ? { authorization: `Bearer ${token}` } : {},
              },
              10_000,
            );
            got = outcome(response);
            keyId = response.ok_response?.headers.find((h) => h.header.key === "x-auth-key-id")
              ?.header.value;
          } catch (error) {
            stats.checkErrors++;
            lastAdminError = `check: ${String(error)}`;
            continue;
          }
          const doneAt = now();
          stats.checks++;
          latencies.push(doneAt - sentAt);
          if (got === "allow") stats.allows++;
          else stats.denies++;

          // What the answer must be, judged when it arrives: a secret whose
          // ending call returned before this Check was sent must be denied; a
          // secret whose ending call had not even been sent when the answer
          // arrived must be allowed; in between, either.
          let expected: string | undefined;
          if (!secret) expected = junk[1];
          else if (secret.endedAt !== undefined && sentAt > secret.endedAt) {
            expected = secret.endCode;
          } else if (secret.endSentAt === undefined) expected = "allow";
          else if (got !== "allow" && got !== secret.endCode) expected = `allow|${secret.endCode}`;
          if (expected === "allow" && got === "allow" && keyId !== secret?.keyId) {
            expected = `allow as ${secret?.keyId}`;
            got = `allow as ${keyId}`;
          }
          if (expected !== undefined && expected !== got && wrong.length < 1000) {
            wrong.push({
              secret: !secret ? "junk" : pool === live ? "live" : "dead",
              expected,
              got,
              sentAt,
              endedAt: secret?.endedAt,
            });
          }
        }
      };

      // --- memory and file descriptors of the server --------------------------
      let fdsAtWarmup = 0;
      const sampler = async () => {
        while (running()) {
          rss.push({ checks: stats.checks, bytes: rssBytes(kw.pid) });
          if (fdsAtWarmup === 0 && stats.checks >= WARMUP_CHECKS) {
            fdsAtWarmup = readdirSync(`/proc/${kw.pid}/fd`).length;
          }
          await sleep(1_000);
        }
      };

      for (let i = 0; i < LIVE_KEYS / 2; i++) await create();
      await Promise.all([
        ...Array.from({ length: ADMIN_WRITERS }, churn),
        ...Array.from({ length: CHECKS_IN_FLIGHT }, checker),
        sampler(),
      ]);
      const fdsAtEnd = readdirSync(`/proc/${kw.pid}/fd`).length;

      latencies.sort((a, b) => a - b);
      const quantile = (q: number) =>
        Math.round(latencies[Math.floor(q * (latencies.length - 1))] ?? 0);
      rss.push({ checks: stats.checks, bytes: rssBytes(kw.pid) });
      if (fdsAtWarmup === 0) fdsAtWarmup = fdsAtEnd;
      const settled = rss.filter((s) => s.checks >= WARMUP_CHECKS);
      const baseline = settled[0]?.bytes ?? 0;
      const peak = Math.max(...settled.map((s) => s.bytes));
      const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
      console.info(
        `soak ${Math.round(now() / 1000)}s: ${stats.checks} Checks (${stats.allows} allow, ${stats.denies} deny), ` +
          `${stats.admin} admin writes, p50 ${quantile(0.5)} ms, p99 ${quantile(0.99)} ms, ` +
          `max ${quantile(1)} ms; RSS ${mb(baseline)} after ${WARMUP_CHECKS} Checks -> peak ${mb(peak)}; ` +
          `fds ${fdsAtWarmup} -> ${fdsAtEnd}`,
      );

      expect(kw.alive()).toBe(true);
      expect(wrong, JSON.stringify(wrong.slice(0, 10))).toEqual([]);
      expect(stats.checkErrors, lastAdminError).toBe(0);
      expect(stats.adminErrors, lastAdminError).toBe(0);
      expect(stats.checks).toBeGreaterThanOrEqual(SOAK_CHECKS);
      expect(stats.admin).toBeGreaterThanOrEqual(SOAK_ADMIN_WRITES);
      expect(stats.allows).toBeGreaterThan(0);
      expect(stats.denies).toBeGreaterThan(0);
      expect(peak - baseline).toBeLessThan(MAX_RSS_GROWTH);
      expect(fdsAtEnd - fdsAtWarmup).toBeLessThan(50);

      // Finally, at rest: every live secret allows, every dead one is denied.
      for (const secret of live) {
        const got = outcome(
          await client.send({
            method: "GET",
            path: "/api/v1/sources",
            headers: { authorization: `Bearer ${secret.value}` },
          }),
        );
        expect(got).toBe("allow");
      }
      for (const secret of dead.slice(-200)) {
        const got = outcome(
          await client.send({
            method: "GET",
            path: "/api/v1/sources",
            headers: { authorization: `Bearer ${secret.value}` },
          }),
        );
        expect(got).toBe(secret.endCode);
      }
    },
    // A hang guard only (a stalled server), far above any machine's pace.
    30 * 60_000,
  );
});
