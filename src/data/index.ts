// Public API of src/data: data curation for long-CoT SFT and RL (formats, dedup, decontamination,
// selection, difficulty tagging, statistics). Names are prefixed where they would be generic.
export {
  type BenchmarkText,
  type ContaminationHit,
  DEFAULT_DECONTAM_BENCHMARKS,
  defaultBenchmarkDir,
  expandBenchmarkSpecs,
  KNOWN_DECONTAM_BENCHMARKS,
  loadDecontamBenchmark,
  NgramDecontaminator,
} from "./decontam.js";
export { Deduplicator, type DeduplicatorOptions, type DuplicateVerdict, type RowRef } from "./dedup.js";
export {
  atomicStreamFile,
  type DataFormat,
  type DataRecord,
  type DataWriter,
  dataFormatOf,
  type MalformedReason,
  type MalformedRow,
  openDataWriter,
  openJsonlWriter,
  openParquetWriter,
  type ReadDataOptions,
  readDataRows,
  sha256File,
  writeParquetFromJsonl,
} from "./io.js";
export {
  exactJaccard,
  MinHashLsh,
  type MinHashOptions,
  optimalLshParams,
  resolveMinHashOptions,
} from "./minhash.js";
export { encodeForParquet, ParquetShapeBuilder, parquetSchemaOf } from "./parquet.js";
export {
  type ConvertRunOptions,
  type DataManifest,
  type DecontamRunOptions,
  type DedupRunOptions,
  runConvert,
  runDecontam,
  runDedup,
  runSelect,
  runStats,
  runTag,
  type SelectRunOptions,
  type StatsRunOptions,
  sidecarPaths,
  type TagRunOptions,
} from "./pipeline.js";
export {
  type ChatMessage,
  checkDataRow,
  convertRow,
  fromVerlRow,
  ROW_FORMATS,
  type RowFormat,
  rowAnswer,
  rowPromptText,
  rowResponseText,
  rowSource,
  toChatRow,
  toVerlRow,
  type VerlRow,
} from "./rows.js";
export {
  hashedNgramVector,
  kCenterGreedy,
  mixQuotas,
  rankSources,
  SelectionSampler,
  SOURCE_SCORE_RULES,
  type SourceScore,
  SourceScoreAccumulator,
  type SourceScoreRule,
  topKSources,
} from "./select.js";
export { DataStatsAccumulator, formatStatsHtml, formatStatsText, LengthHistogram } from "./stats.js";
export { editWords, type SyntheticRow, syntheticCorpus, syntheticVocabulary } from "./synthetic.js";
export {
  codeScorer as codeDifficultyScorer,
  codeTestCount,
  codeTestsFromGroundTruth,
  type DifficultyResult,
  type DifficultyTag,
  type DifficultyThresholds,
  difficultyOf,
  type GeneratorSamplerOptions,
  generatorSampler,
  mathScorer as mathDifficultyScorer,
  openAiCompatibleSampler,
  type ResponseSampler,
  type ResponseScorer,
  type RlFilterOptions,
  rlFilter as rlDataFilter,
  tagDifficulty,
} from "./tag.js";
export { approxTokenCount, normalizedWords, normalizeText } from "./text.js";
