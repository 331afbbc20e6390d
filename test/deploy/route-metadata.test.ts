import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULTS } from "../../src/config/schema.js";
import { loadPolicyFile } from "../../src/policy/policy.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import { SHIPPED_POLICY, startTestKeyward, type TestKeyward } from "../helpers/keyward.js";
import { checkEnvoyMessage } from "./envoy-api.js";
import { findDocument, PORTS, policyScopes, readYamlDocuments, type Tree } from "./manifests.js";

// The Envoy Gateway and Istio examples that keep each route's scopes on the
// route (route metadata). No Kubernetes, Envoy Gateway or Istio runs here:
// the manifests are checked for consistency with each other and with
// keyward, every Envoy fragment they patch in is checked against Envoy's own
// v3 API protos, and the metadata they set is sent to a real keyward as
// route_metadata_context, which must then judge by it.
const NAMESPACE = DEFAULTS.metadataNamespace;
const shipped = loadPolicyFile(SHIPPED_POLICY);

/** The route's scopes as the metadata states them, and what the policy file says for the same request. */
function scopesOf(metadata: Tree): string[] {
  expect(checkEnvoyMessage("envoy.config.core.v3.Metadata", metadata)).toEqual([]);
  const scopes = metadata.filter_metadata[NAMESPACE].required_scopes;
  expect(Array.isArray(scopes)).toBe(true);
  for (const scope of scopes) expect(policyScopes()).toContain(scope);
  return scopes;
}

function policyScopesFor(method: string, path: string): readonly string[] {
  const requirement = shipped.requirementFor(method, path);
  return requirement.type === "scopes" ? requirement.scopes : ["(denied)"];
}

describe("deploy/envoy-gateway/developer-api.yaml", () => {
  const documents = readYamlDocuments("deploy/envoy-gateway/developer-api.yaml");
  const route = findDocument(documents, "HTTPRoute");
  const security = findDocument(documents, "SecurityPolicy");
  const patch = findDocument(documents, "EnvoyPatchPolicy");
  const patches: Tree[] = patch.spec.jsonPatches;

  it("checks the HTTPRoute with keyward's Check port, failing closed", () => {
    expect(route.apiVersion).toBe("gateway.networking.k8s.io/v1");
    expect(security.apiVersion).toBe("gateway.envoyproxy.io/v1alpha1");
    expect(security.spec.targetRefs).toEqual([
      { group: "gateway.networking.k8s.io", kind: "HTTPRoute", name: route.metadata.name },
    ]);
    expect(security.spec.extAuth.failOpen).toBe(false);
    expect(security.spec.extAuth.grpc.backendRefs[0].port).toBe(PORTS.check);
  });

  it("patches the gateway the route is attached to, on its listener", () => {
    const [parent] = route.spec.parentRefs;
    expect(patch.spec.type).toBe("JSONPatch");
    expect(patch.spec.targetRef).toMatchObject({ kind: "Gateway", name: parent.name });
    for (const jsonPatch of patches) {
      expect(jsonPatch.name).toBe(`${parent.namespace}/${parent.name}/${parent.sectionName}`);
      expect(jsonPatch.operation.op).toBe("add");
    }
  });

  it("has the SecurityPolicy's ext_authz filter send the keyward namespace of route metadata", () => {
    const filter = patches.find((p) => p.type.endsWith("envoy.config.listener.v3.Listener"));
    const { metadata } = security;
    expect(filter.operation.jsonPath).toContain(
      `envoy.filters.http.ext_authz/securitypolicy/${metadata.namespace}/${metadata.name}`,
    );
    const field = filter.operation.path.replace(/^\//, "");
    expect(field).toBe("route_metadata_context_namespaces");
    expect(
      checkEnvoyMessage("envoy.extensions.filters.http.ext_authz.v3.ExtAuthz", {
        [field]: filter.operation.value,
      }),
    ).toEqual([]);
    expect(filter.operation.value).toEqual([NAMESPACE]);
  });

  it("puts on each route rule the scopes the policy file names for it", () => {
    const routePatches = patches.filter((p) => p.type.endsWith("RouteConfiguration"));
    expect(routePatches).toHaveLength(route.spec.rules.length);
    const hostname = route.spec.hostnames[0].replaceAll(".", "_");
    for (const jsonPatch of routePatches) {
      const name = /routes\[\?\(@\.name == '([^']+)'\)\]/.exec(jsonPatch.operation.jsonPath)?.[1];
      const found = /^httproute\/([^/]+)\/([^/]+)\/rule\/(\d+)\/match\/(\d+)\/(.+)$/.exec(
        name ?? "",
      );
      expect(found, name).not.toBeNull();
      const [, namespace, routeName, rule, match, host] = found as unknown as string[];
      expect([namespace, routeName, host]).toEqual([
        route.metadata.namespace,
        route.metadata.name,
        hostname,
      ]);
      const matched = route.spec.rules[Number(rule)].matches[Number(match)];
      expect(jsonPatch.operation.path).toBe("/metadata");
      expect(scopesOf(jsonPatch.operation.value)).toEqual(
        policyScopesFor(matched.method, matched.path.value),
      );
    }
  });
});

describe("deploy/istio/route-scopes.yaml", () => {
  const documents = readYamlDocuments("deploy/istio/route-scopes.yaml");
  const virtualService = findDocument(documents, "VirtualService");
  const policy = findDocument(documents, "AuthorizationPolicy");
  const filter = findDocument(documents, "EnvoyFilter");
  const mesh = findDocument(readYamlDocuments("deploy/istio/mesh-config.yaml"), "IstioOperator");
  const patches: Tree[] = filter.spec.configPatches;

  it("turns on the gRPC provider for the gateway the EnvoyFilter patches", () => {
    expect(policy.spec.action).toBe("CUSTOM");
    const provider = mesh.spec.meshConfig.extensionProviders.find(
      (p: Tree) => p.name === policy.spec.provider.name,
    );
    expect(provider?.envoyExtAuthzGrpc?.port).toBe(PORTS.check);
    expect(filter.spec.workloadSelector.labels).toEqual(policy.spec.selector.matchLabels);
    for (const patch of patches) expect(patch.match.context).toBe("GATEWAY");
  });

  it("has the ext_authz filter send the keyward namespace of route metadata", () => {
    const patch = patches.find((p) => p.applyTo === "HTTP_FILTER");
    expect(patch.match.listener.filterChain.filter.subFilter.name).toBe(
      "envoy.filters.http.ext_authz",
    );
    expect(
      checkEnvoyMessage(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
        patch.patch.value,
      ),
    ).toEqual([]);
    expect(patch.patch.value.typed_config.route_metadata_context_namespaces).toEqual([NAMESPACE]);
  });

  it("puts on each VirtualService route the scopes the policy file names for it", () => {
    const routePatches = patches.filter((p) => p.applyTo === "HTTP_ROUTE");
    expect(routePatches.map((p) => p.match.routeConfiguration.vhost.route.name)).toEqual(
      virtualService.spec.http.map((h: Tree) => h.name),
    );
    for (const patch of routePatches) {
      expect(checkEnvoyMessage("envoy.config.route.v3.Route", patch.patch.value)).toEqual([]);
      const http = virtualService.spec.http.find(
        (h: Tree) => h.name === patch.match.routeConfiguration.vhost.route.name,
      );
      const { uri, method } = http.match[0];
      expect(scopesOf(patch.patch.value.metadata)).toEqual(
        policyScopesFor(method.exact, uri.prefix ?? uri.exact),
      );
    }
  });
});

describe("the examples' route metadata, sent to keyward", () => {
  let kw: TestKeyward;
  let check: EnvoyCheckClient;
  beforeAll(async () => {
    // A policy file that requires nothing of these routes: only the route
    // metadata can make keyward deny.
    kw = await startTestKeyward({ policy: null, scopes: [...policyScopes()] });
    check = new EnvoyCheckClient(kw.ports.check);
  });
  afterAll(async () => {
    check.close();
    await kw.close();
  });

  const examples: [string, Tree][] = [
    ...readYamlDocuments("deploy/envoy-gateway/developer-api.yaml")
      .filter((d) => d.kind === "EnvoyPatchPolicy")
      .flatMap((d) => d.spec.jsonPatches)
      .filter((p: Tree) => p.operation.path === "/metadata")
      .map((p: Tree): [string, Tree] => ["envoy-gateway", p.operation.value]),
    ...readYamlDocuments("deploy/istio/route-scopes.yaml")
      .filter((d) => d.kind === "EnvoyFilter")
      .flatMap((d) => d.spec.configPatches)
      .filter((p: Tree) => p.applyTo === "HTTP_ROUTE")
      .map((p: Tree): [string, Tree] => ["istio", p.patch.value.metadata]),
  ];

  it.each(examples)("%s: judges by the route's scopes", async (_source, metadata) => {
    const scopes: string[] = metadata.filter_metadata[NAMESPACE].required_scopes;
    const holder = kw.store.create({ kind: "live", scopes }).secret;
    const other = kw.store.create({ kind: "live", scopes: ["items:read"] }).secret;
    const ask = (token: string) =>
      check.check({
        path: "/api/v1/sources",
        headers: { authorization: `Bearer ${token}` },
        routeMetadata: metadata.filter_metadata,
      });
    expect((await ask(holder)).status?.code).toBe(0);
    expect((await ask(other)).status?.code).toBe(7);
  });
});
