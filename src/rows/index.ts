// Public API of src/rows: the one row reader (jsonl, .jsonl.gz, parquet, JSON arrays, shard folders)
// and the one field-sniffing layer (prompt / response / messages / answer / tests / source).
export {
  answerText,
  asChatMessages,
  type ChatMessage,
  getPath as rowFieldAt,
  type RowFieldNames,
  type RowFields,
  rowAnswer,
  rowMessages,
  rowPromptMessages,
  rowPromptText,
  rowResponseText,
  rowSource,
  rowTests,
  sniffRowFields,
} from "./fields.js";
export { decodeFromParquet, jsonLeafPaths } from "./parquet.js";
export {
  codeTestsFromGroundTruth,
  groundTruthTestCount,
  type RowCodeTest,
  type RowProblem,
  type RowProblemOptions,
  readRowProblems,
  rowToProblem,
} from "./problems.js";
export {
  collectRows,
  expandRowPaths,
  fileNotReadable,
  type MalformedReason,
  type MalformedRow,
  malformedRowError,
  type ReadRowsOptions,
  type RowFileFormat,
  type RowRecord,
  readRows,
  rowFileFormat,
  rowLocation,
} from "./read.js";
