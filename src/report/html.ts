import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

/** What every klear HTML report shares: uPlot inlined (the file opens offline) and safe embedding. */

let uplotAssets: { js: string; css: string } | null = null;

export function loadUplot(): { js: string; css: string } {
  if (uplotAssets) return uplotAssets;
  const require = createRequire(import.meta.url);
  const jsPath = require.resolve("uplot/dist/uPlot.iife.min.js");
  const cssPath = require.resolve("uplot/dist/uPlot.min.css");
  uplotAssets = { js: readFileSync(jsPath, "utf8"), css: readFileSync(cssPath, "utf8") };
  return uplotAssets;
}

/** JSON safe inside a <script> element (no `</script>`, no U+2028/2029 surprises). */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
