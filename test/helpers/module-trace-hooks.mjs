// The loader hooks of module-trace.mjs (they run on node's loader thread).
import { appendFileSync } from "node:fs";

let file;

export function initialize(data) {
  file = data.file;
}

export async function load(url, context, nextLoad) {
  if (url.startsWith("file:")) appendFileSync(file, `${url}\n`);
  return nextLoad(url, context);
}
