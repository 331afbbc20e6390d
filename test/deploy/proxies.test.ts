import { describe, expect, it } from "vitest";
import { DENY_BODY_HEADER } from "../../src/http/forward-auth-response.js";
import { FORWARD_AUTH_PATH } from "../../src/http/forward-auth-view.js";
import {
  findDocument,
  IDENTITY_HEADERS,
  PORTS,
  readYamlDocuments,
  type Tree,
} from "./manifests.js";

/** Header names as Go (Traefik) canonicalises them: X-Auth-Key-Id. */
const canonical = (name: string) =>
  name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());

describe("deploy/istio", () => {
  const mesh = findDocument(readYamlDocuments("deploy/istio/mesh-config.yaml"), "IstioOperator");
  const providers: Tree[] = mesh.spec.meshConfig.extensionProviders;
  const policy = findDocument(
    readYamlDocuments("deploy/istio/authorization-policy.yaml"),
    "AuthorizationPolicy",
  );
  const serviceEntry = findDocument(
    readYamlDocuments("deploy/istio/keyward-local.yaml"),
    "ServiceEntry",
  );

  it("has an AuthorizationPolicy with action CUSTOM naming the gRPC provider", () => {
    expect(policy.apiVersion).toBe("security.istio.io/v1");
    expect(policy.spec.action).toBe("CUSTOM");
    const provider = providers.find((p) => p.name === policy.spec.provider.name);
    expect(provider?.envoyExtAuthzGrpc).toBeDefined();
    expect(policy.spec.rules[0].to[0].operation.notPaths).toEqual(["/healthz", "/readyz"]);
  });

  it("points the gRPC provider at keyward's Check port, failing closed", () => {
    const grpc = providers.find((p) => p.envoyExtAuthzGrpc)?.envoyExtAuthzGrpc;
    expect(grpc.port).toBe(PORTS.check);
    expect(grpc.failOpen).toBe(false);
    expect(grpc.statusOnError).toBe("503");
    expect(grpc.timeout).toMatch(/^\d+(\.\d+)?s$/);
  });

  it("points the HTTP provider at forward-auth, passing exactly the identity headers upstream", () => {
    const http = providers.find((p) => p.envoyExtAuthzHttp)?.envoyExtAuthzHttp;
    expect(http.port).toBe(PORTS.http);
    expect(http.pathPrefix).toBe(FORWARD_AUTH_PATH);
    expect(http.failOpen).toBe(false);
    expect(http.includeRequestHeadersInCheck).toContain("authorization");
    expect(http.headersToUpstreamOnAllow).toEqual(IDENTITY_HEADERS);
    expect(http.headersToDownstreamOnDeny).toEqual(
      expect.arrayContaining(["www-authenticate", "content-type"]),
    );
  });

  it("resolves the providers' service to the sidecar on loopback", () => {
    for (const provider of providers) {
      const settings = provider.envoyExtAuthzGrpc ?? provider.envoyExtAuthzHttp;
      expect(serviceEntry.spec.hosts).toContain(settings.service);
      expect(serviceEntry.spec.ports.map((p: Tree) => p.number)).toContain(settings.port);
    }
    expect(serviceEntry.spec.endpoints).toEqual([{ address: "127.0.0.1" }]);
    expect(serviceEntry.spec.ports).toEqual([
      { name: "grpc-check", number: PORTS.check, protocol: "GRPC" },
      { name: "http-forward-auth", number: PORTS.http, protocol: "HTTP" },
    ]);
    expect(serviceEntry.metadata.namespace).toBe(policy.metadata.namespace);
  });
});

describe("deploy/traefik/dynamic.yaml", () => {
  const [config] = readYamlDocuments("deploy/traefik/dynamic.yaml") as [Tree];
  const forwardAuth = config.http.middlewares.keyward.forwardAuth;

  it("sends ForwardAuth to keyward's forward-auth endpoint, with only the credential", () => {
    expect(forwardAuth.address).toBe(`http://127.0.0.1:${PORTS.http}${FORWARD_AUTH_PATH}`);
    expect(forwardAuth.trustForwardHeader).toBe(false);
    expect(forwardAuth.authRequestHeaders).toEqual(["Authorization"]);
  });

  it("strips every client X-Auth-* header and copies keyward's", () => {
    const regex = new RegExp(forwardAuth.authResponseHeadersRegex);
    for (const name of [...IDENTITY_HEADERS, "x-auth-role"]) {
      expect(regex.test(canonical(name)), name).toBe(true);
    }
    for (const name of ["Authorization", canonical(DENY_BODY_HEADER), "X-Forwarded-Uri"]) {
      expect(regex.test(name), name).toBe(false);
    }
  });

  it("applies the middleware to the router", () => {
    expect(config.http.routers["developer-api"].middlewares).toEqual(["keyward"]);
  });
});
