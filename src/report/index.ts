// Public API of src/report: self-contained HTML reports that open offline.
export { type EvalReportInput, readEvalResults, renderEvalReport } from "./eval-report.js";
export { escapeHtml, jsonForScript } from "./html.js";
export { evalRows, type ReportSourceRun, reportInput } from "./run-input.js";
export {
  chartSpecs,
  REPORT_PANELS,
  type RunReportEvalRow,
  type RunReportInput,
  type RunReportRun,
  type RunReportSample,
  type RunReportTable,
  renderRunReport,
} from "./run-report.js";
