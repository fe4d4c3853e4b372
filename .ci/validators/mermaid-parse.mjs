#!/usr/bin/env node
// Parse Mermaid diagrams with Mermaid's own parser (npm mermaid, in a jsdom window: Node has
// no DOM), as a ```mermaid block on GitHub would before rendering. One diagram per file.
// Usage: node mermaid-parse.mjs FILE...
// Exit: 0 = every file parses, 1 = at least one does not, 2 = usage / IO error.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const nm = path.join(here, "node", "node_modules");
const { JSDOM } = await import(pathToFileURL(path.join(nm, "jsdom/lib/api.js")).href);
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const mermaid = (await import(pathToFileURL(path.join(nm, "mermaid/dist/mermaid.core.mjs")).href)).default;
mermaid.initialize({ startOnLoad: false });

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node mermaid-parse.mjs FILE...");
  process.exit(2);
}
let failed = 0;
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    console.error(`${file}: ${e.message}`);
    process.exit(2);
  }
  try {
    const result = await mermaid.parse(text);
    if (!result) throw new Error("not a diagram Mermaid knows");
  } catch (e) {
    failed++;
    console.log(`${file}: ${String(e.message || e).split("\n").slice(0, 4).join(" | ")}`);
  }
}
process.exit(failed ? 1 : 0);
