import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pathToFileURL } from "node:url";
import { runStats } from "../../src/data/index.js";
import { withChromiumPage } from "../helpers/browser.js";

const dir = mkdtempSync(join(tmpdir(), "klear-data-stats-browser-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("the stats page opens offline in Chromium with its table and charts", async (t) => {
  await withChromiumPage(t, async ({ page, errors }) => {
    const src = join(dir, "rows.jsonl");
    const rows = Array.from({ length: 50 }, (_, i) => ({
      messages: [
        { role: "user", content: `question ${i} <b>not markup</b>` },
        { role: "assistant", content: "word ".repeat(20 + i * 5) },
      ],
      data_source: i % 5 === 0 ? "s<script>alert(1)</script>" : "openthoughts",
      difficulty: i % 4 === 0 ? "easy" : "hard",
    }));
    writeFileSync(src, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const html = join(dir, "stats.html");
    await runStats([src], { html });
    await page.goto(pathToFileURL(html).href);
    assert.equal(await page.locator("#total").innerText(), "50 rows in 2 sources");
    assert.equal(await page.locator("#sources tbody tr").count(), 2);
    assert.equal(await page.locator("svg").count(), 4);
    const firstCell = await page.locator("#sources tbody tr").first().locator("td").first().innerText();
    assert.equal(firstCell, "openthoughts");
    const barWidth = await page.locator("svg rect").first().getAttribute("width");
    assert.ok(Number(barWidth) > 100);
    assert.deepEqual(errors, []);
  });
});
