import type {
  ClientHttp2Stream,
  ClientSessionOptions,
  ClientSessionRequestOptions,
  OutgoingHttpHeaders,
  SecureClientSessionOptions,
} from "node:http2";
import { Http2SessionManager } from "@connectrpc/connect-node";

/**
 * The HTTP/2 flow-control window a replica opens to its primary, for each
 * stream and for the connection as a whole. HTTP/2's default (64 KiB) lets
 * the primary send a 2–20 MB snapshot only 64 KiB ahead of what the replica
 * has read: every 32 KiB waits for a WINDOW_UPDATE from a replica whose
 * process may be busy, which made a fleet's snapshot storm wait on
 * round trips rather than on work (bench/NOTES.md, the fleet section).
 * It is also the most a replica buffers unread, so it stays small enough for
 * a sidecar's memory.
 */
export const WATCH_WINDOW_BYTES = 1024 * 1024;

/**
 * connect-node's HTTP/2 session manager with {@link WATCH_WINDOW_BYTES}
 * windows: the stream window in the SETTINGS the session opens with, the
 * connection window raised once the session is up (node:http2 has no option
 * for it; `setLocalWindowSize` to the same size again is a no-op).
 */
class WideWindowSessions extends Http2SessionManager {
  override async request(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
    options: Omit<ClientSessionRequestOptions, "signal">,
  ): Promise<ClientHttp2Stream> {
    const stream = await super.request(method, path, headers, options);
    const session = stream.session;
    if (session && !session.destroyed) session.setLocalWindowSize(WATCH_WINDOW_BYTES);
    return stream;
  }
}

/** A session manager for a replica's calls to its primary (`options`: TLS and the like). */
export function wideWindowSessions(
  url: string,
  options: ClientSessionOptions | SecureClientSessionOptions = {},
): Http2SessionManager {
  return new WideWindowSessions(url, undefined, {
    ...options,
    settings: { ...options.settings, initialWindowSize: WATCH_WINDOW_BYTES },
  });
}
