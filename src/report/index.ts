// Public API of src/report: self-contained HTML reports that open offline.
export { readEvalResults, renderEvalReport } from "./eval-report.js";
