#!/usr/bin/env node
// Batch evaluator of GitHub Actions expressions with GitHub's own @actions/expressions, for
// the tests' in-house workflow runner. Reads one JSON request per line on stdin:
//   {"expr": "...", "context": {...}, "status": "success"|"failure"|"cancelled", "if": bool}
// and writes one JSON line per request: {"result": <value>, "truthy": bool} or {"error": "..."}.
// `if: true` applies GitHub's implicit `success() && (...)` when no status function appears.
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const nm = process.env.GHA_NODE_MODULES || path.join(here, "node", "node_modules");
const ex = await import(pathToFileURL(path.join(nm, "@actions/expressions/dist/index.js")).href);
const { truthy } = await import(pathToFileURL(path.join(nm, "@actions/expressions/dist/result.js")).href);
const { Lexer, Parser, Evaluator, data } = ex;
const CONTEXTS = ["github", "env", "vars", "job", "jobs", "steps", "runner", "secrets", "strategy", "matrix", "needs", "inputs"];
const B = (v) => new data.BooleanData(v);

function evaluate(req) {
  const status = req.status || "success";
  const fns = [
    { name: "success", minArgs: 0, maxArgs: 0, call: () => B(status === "success") },
    { name: "failure", minArgs: 0, maxArgs: 0, call: () => B(status === "failure") },
    { name: "cancelled", minArgs: 0, maxArgs: 0, call: () => B(status === "cancelled") },
    { name: "always", minArgs: 0, maxArgs: 0, call: () => B(true) },
    { name: "hashFiles", minArgs: 1, maxArgs: 255, call: () => new data.StringData("") },
  ];
  let expr = req.expr.trim();
  const m = /^\$\{\{([\s\S]*)\}\}$/.exec(expr);
  if (m) expr = m[1].trim();
  if (req.if && !/\b(success|failure|cancelled|always)\s*\(/i.test(expr)) expr = `success() && (${expr})`;
  const ctx = { ...(req.context || {}) };
  for (const c of CONTEXTS) if (!(c in ctx)) ctx[c] = {};
  const context = JSON.parse(JSON.stringify(ctx), data.reviver);
  const lr = new Lexer(expr).lex();
  const ast = new Parser(lr.tokens, CONTEXTS, fns).parse();
  const result = new Evaluator(ast, context, new Map(fns.map((f) => [f.name.toLowerCase(), f]))).evaluate();
  return { result: JSON.parse(JSON.stringify(result, data.replacer)), truthy: truthy(result) };
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let out;
  try { out = evaluate(JSON.parse(line)); } catch (e) { out = { error: String(e.message || e) }; }
  process.stdout.write(JSON.stringify(out) + "\n");
}
