import { normalizedWords } from "../../src/data/index.js";

/**
 * Plants a benchmark problem into a training prompt with small word-level edits: every `every`
 * words one word is substituted, a word inserted or one deleted (cycling), case and spacing change,
 * and the text is wrapped in an instruction. Edits are `every` words apart, so 9-word windows
 * between them survive, which is exactly what the paper's 9-gram rule should still catch.
 */
export function plantWithEdits(text: string, every = 12): string {
  const words = text.split(/\s+/).filter((w) => w !== "");
  const out: string[] = [];
  let op = 0;
  for (let i = 0; i < words.length; i++) {
    if (i % every === every / 2) {
      const kind = op++ % 3;
      if (kind === 0) out.push("zorblax");
      else if (kind === 1) out.push(words[i], "indeed");
      // kind 2 deletes the word.
      continue;
    }
    out.push(i % 5 === 0 ? words[i].toUpperCase() : words[i]);
  }
  return `Solve the following problem carefully.\n\n${out.join("  ")}\n\nPut the final answer in \\boxed{}.`;
}

export function wordCount(text: string): number {
  return normalizedWords(text).length;
}
