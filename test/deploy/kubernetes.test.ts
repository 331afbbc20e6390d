import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { AUTHORIZATION_SERVICE } from "../../src/check/server.js";
import { loadConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { ROLE_NODE_OPTIONS } from "../../src/lib/heap-tuning.js";
import { findDocument, PORTS, readYamlDocuments, shippedPolicy, type Tree } from "./manifests.js";

const dir = mkdtempSync(join(tmpdir(), "keyward-deploy-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Validates a ConfigMap's keyward.yaml exactly as `keyward serve --config` would. */
function keywardConfigOf(configMap: Tree): Config {
  const file = join(dir, `${configMap.metadata.name}.yaml`);
  writeFileSync(file, configMap.data["keyward.yaml"]);
  return loadConfig({ file, env: {} });
}

/** Where a projected/configMap/secret volume puts a key, given the container's mounts. */
function mountedPath(
  pod: Tree,
  container: Tree,
  source: "configMap" | "secret",
  name: string,
  key: string,
): string | undefined {
  for (const mount of container.volumeMounts ?? []) {
    const volume = pod.volumes.find((v: Tree) => v.name === mount.name);
    const sources: Tree[] = volume?.projected?.sources ?? [];
    for (const item of sources.flatMap((s) => (s[source]?.name === name ? s[source].items : []))) {
      if (item.key === key) return posix.join(mount.mountPath, item.path);
    }
  }
  return undefined;
}

/** The volume mounted at a directory, if any. */
/** A Kubernetes memory quantity in Mi or Gi, as MiB. */
function mebibytes(quantity: string): number {
  const [, amount = "", unit = ""] = /^(\d+)(Mi|Gi)$/.exec(quantity) ?? [];
  return Number(amount) * (unit === "Gi" ? 1024 : 1);
}

function volumeAt(pod: Tree, container: Tree, directory: string): Tree | undefined {
  const mount = (container.volumeMounts ?? []).find((m: Tree) => m.mountPath === directory);
  return (
    mount && { ...(pod.volumes?.find((v: Tree) => v.name === mount.name) ?? {}), name: mount.name }
  );
}

function expectHardened(container: Tree, pod: Tree = {}): void {
  const security = { ...pod.securityContext, ...container.securityContext };
  expect(security.runAsNonRoot).toBe(true);
  expect(security.runAsUser).toBeGreaterThan(0);
  expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
  expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
  expect(container.securityContext.capabilities.drop).toEqual(["ALL"]);
  expect(container.resources.requests).toMatchObject({
    cpu: expect.anything(),
    memory: expect.anything(),
  });
  expect(container.resources.limits).toMatchObject({ memory: expect.anything() });
}

const primaryDocs = readYamlDocuments("deploy/kubernetes/primary.yaml");
const replicaDocs = readYamlDocuments("deploy/kubernetes/replica-config.yaml");
const patch = findDocument(
  readYamlDocuments("deploy/kubernetes/replica-sidecar-patch.yaml"),
  "Deployment",
);
const secrets = readYamlDocuments("deploy/kubernetes/replication-token.yaml");

describe("deploy/kubernetes/primary.yaml", () => {
  const configMap = findDocument(primaryDocs, "ConfigMap", "keyward-primary");
  const service = findDocument(primaryDocs, "Service", "keyward-primary");
  const statefulSet = findDocument(primaryDocs, "StatefulSet", "keyward-primary");
  const pod = statefulSet.spec.template.spec;
  const container = pod.containers.find((c: Tree) => c.name === "keyward");
  const config = keywardConfigOf(configMap);

  it("configures role primary with a keyward.yaml that keyward's own loader accepts", () => {
    expect(config.role).toBe("primary");
    expect(config.listen).toEqual({ host: "0.0.0.0", ...PORTS });
  });

  it("ships deploy/policy.yaml unchanged beside it", () => {
    expect(parse(configMap.data["policy.yaml"])).toEqual(shippedPolicy());
    expect(mountedPath(pod, container, "configMap", configMap.metadata.name, "policy.yaml")).toBe(
      config.policy,
    );
    expect(mountedPath(pod, container, "configMap", configMap.metadata.name, "keyward.yaml")).toBe(
      container.env.find((e: Tree) => e.name === "KEYWARD_CONFIG").value,
    );
  });

  it("keeps the database on the StatefulSet's volume claim", () => {
    expect(statefulSet.spec.replicas).toBe(1);
    const volume = volumeAt(pod, container, dirname(config.database));
    expect(statefulSet.spec.volumeClaimTemplates.map((t: Tree) => t.metadata.name)).toContain(
      volume?.name,
    );
  });

  it("reads the replication token from the Secret", () => {
    const secret = findDocument(
      secrets,
      "Secret",
      "keyward-replication",
      statefulSet.metadata.namespace,
    );
    expect(mountedPath(pod, container, "secret", secret.metadata.name, "token")).toBe(
      config.replication?.token_file,
    );
  });

  it("exposes check 9191, admin 9192 and http 9193 on the container and the Service", () => {
    const containerPorts = Object.fromEntries(
      container.ports.map((p: Tree) => [p.name, p.containerPort]),
    );
    expect(containerPorts).toEqual(PORTS);
    const servicePorts = Object.fromEntries(
      service.spec.ports.map((p: Tree) => [p.name, [p.port, p.targetPort]]),
    );
    expect(servicePorts).toEqual({
      check: [9191, "check"],
      admin: [9192, "admin"],
      http: [9193, "http"],
    });
    expect(service.spec.selector).toEqual(statefulSet.spec.template.metadata.labels);
    expect(findDocument(primaryDocs, "Service", statefulSet.spec.serviceName).spec.clusterIP).toBe(
      "None",
    );
  });

  it("probes /healthz for liveness and /readyz for readiness on the HTTP port", () => {
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
  });

  it("runs unprivileged on a read-only root filesystem", () => {
    expectHardened(container, pod);
    expect(pod.securityContext.fsGroup).toBe(pod.securityContext.runAsUser);
  });
});

describe("deploy/kubernetes/replica-config.yaml and replica-sidecar-patch.yaml", () => {
  const configMap = findDocument(replicaDocs, "ConfigMap", "keyward-replica");
  const config = keywardConfigOf(configMap);
  const pod = patch.spec.template.spec;
  const container = pod.containers.find((c: Tree) => c.name === "keyward");

  it("configures role replica, following the primary's Service on the admin port", () => {
    expect(config.role).toBe("replica");
    expect(config.listen.host).toBe("0.0.0.0");
    expect([config.listen.check, config.listen.http]).toEqual([PORTS.check, PORTS.http]);
    const primary = new URL(config.replication?.primary ?? "");
    const service = findDocument(primaryDocs, "Service", "keyward-primary");
    expect(primary.hostname).toBe(
      `${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`,
    );
    expect(Number(primary.port)).toBe(PORTS.admin);
    expect(service.spec.ports.find((p: Tree) => p.name === "admin").port).toBe(PORTS.admin);
  });

  it("ships deploy/policy.yaml unchanged, and the same image as the primary", () => {
    expect(parse(configMap.data["policy.yaml"])).toEqual(shippedPolicy());
    expect(mountedPath(pod, container, "configMap", "keyward-replica", "policy.yaml")).toBe(
      config.policy,
    );
    expect(mountedPath(pod, container, "configMap", "keyward-replica", "keyward.yaml")).toBe(
      container.env.find((e: Tree) => e.name === "KEYWARD_CONFIG").value,
    );
    const primary = findDocument(primaryDocs, "StatefulSet").spec.template.spec.containers[0];
    expect(container.image).toBe(primary.image);
  });

  it("starts node with the replica's V8 sizing (src/lib/heap-tuning.ts), under a limit above its measured peak", () => {
    expect(container.env.find((e: Tree) => e.name === "NODE_OPTIONS")?.value).toBe(
      ROLE_NODE_OPTIONS.replica,
    );
    // bench/NOTES.md "Replica footprint": ~97 MB after start, ~114 MB peak at K = 100,000.
    expect(mebibytes(container.resources.limits.memory)).toBeGreaterThanOrEqual(160);
    expect(mebibytes(container.resources.requests.memory)).toBeGreaterThanOrEqual(64);
  });

  it("keeps the replica's SQLite file on an emptyDir", () => {
    expect(volumeAt(pod, container, dirname(config.database))?.emptyDir).toBeDefined();
  });

  it("reads the replication token from a Secret in the workload's namespace", () => {
    const secret = findDocument(
      secrets,
      "Secret",
      "keyward-replication",
      configMap.metadata.namespace,
    );
    expect(mountedPath(pod, container, "secret", secret.metadata.name, "token")).toBe(
      config.replication?.token_file,
    );
  });

  it("waits for /readyz (first snapshot) to start, then probes grpc.health.v1 on the Check port", () => {
    expect(container.startupProbe.httpGet).toEqual({ path: "/readyz", port: "keyward-http" });
    expect(container.livenessProbe.grpc).toEqual({ port: PORTS.check });
    expect(container.readinessProbe.grpc).toEqual({
      port: PORTS.check,
      service: AUTHORIZATION_SERVICE,
    });
    const ports = Object.fromEntries(container.ports.map((p: Tree) => [p.name, p.containerPort]));
    expect(ports).toEqual({ "keyward-check": PORTS.check, "keyward-http": PORTS.http });
  });

  it("runs unprivileged on a read-only root filesystem, with requests and limits", () => {
    expectHardened(container);
    expect(container.securityContext.seccompProfile).toEqual({ type: "RuntimeDefault" });
  });

  it("is a strategic-merge patch of a Deployment that adds one container", () => {
    expect([patch.apiVersion, patch.kind]).toEqual(["apps/v1", "Deployment"]);
    expect(pod.containers).toHaveLength(1);
    expect(Object.keys(patch.spec)).toEqual(["template"]);
  });
});

describe("deploy/kubernetes/replication-token.yaml", () => {
  it("holds one clearly marked placeholder, the same in every namespace", () => {
    const tokens = secrets.map((s: Tree) => s.stringData.token);
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).toMatch(/^REPLACE-ME/);
    expect(secrets.map((s: Tree) => s.metadata.namespace).sort()).toEqual(
      [
        findDocument(primaryDocs, "StatefulSet").metadata.namespace,
        findDocument(replicaDocs, "ConfigMap").metadata.namespace,
      ].sort(),
    );
  });
});
