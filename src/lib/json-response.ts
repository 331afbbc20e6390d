/** The part of an HTTP/1 or HTTP/2 response {@link sendJson} writes to. */
export interface JsonResponse {
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  end(text: string): unknown;
}

/** Answers with `body` as JSON (content-length set), on either HTTP version. */
export function sendJson(res: JsonResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}
