import type { AddressInfo } from "node:net";
import { createServer } from "node:net";

/**
 * A port that was free a moment ago: bound on loopback, then released. For
 * a process that must come back on the same port after a restart, or a
 * server whose config names its port before it starts (nginx, Caddy).
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
