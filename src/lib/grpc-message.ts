/**
 * A `grpc-message` value (gRPC over HTTP/2: percent-encoding of the UTF-8
 * bytes outside printable ASCII, and of `%`), for the hand-written answers
 * that do not go through grpc-js (the replication stream, a replica's admin
 * refusal).
 */
export function grpcMessage(text: string): string {
  return text.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
}
