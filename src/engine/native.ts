import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KlearError } from "../util/errors.js";
import type { Backend } from "./backend.js";

/** What the addon reports about itself (OpenBLAS core type and thread counts). */
export interface NativeInfo {
  blasCore: string;
  blasConfig: string;
  blasThreads: number;
  kernelThreads: number;
  /** "openblas", or "klear-avx512" when OpenBLAS runs pre-AVX2 kernels on an AVX-512 CPU. */
  gemmKernel: string;
}

/**
 * Checkpoint dtype conversions (native/convert.cc), bit-exact with the JS loops in src/model/safetensors.ts.
 * 16-bit sides are byte views of any alignment; widening converts `dst.length` values, narrowing `src.length`.
 */
export interface NativeConvert {
  convertBf16ToF32(src: ArrayBufferView, dst: Float32Array): void;
  convertF16ToF32(src: ArrayBufferView, dst: Float32Array): void;
  convertF32ToBf16(src: Float32Array, dst: ArrayBufferView): void;
  convertF32ToF16(src: Float32Array, dst: ArrayBufferView): void;
  /** Reads `dst.length` values of dtype code 0 (F32), 1 (BF16) or 2 (F16) at `position` of `fd` into `dst`, on a libuv thread. */
  readConvert(fd: number, position: number, dtypeCode: 0 | 1 | 2, dst: Float32Array): Promise<void>;
}

type Addon = Omit<Backend, "name"> &
  Partial<NativeConvert> & {
    info(): NativeInfo;
    setThreads(blas: number, kernels: number): void;
    /** Builds the error a kernel throws for an argument of the wrong type, length or range. */
    setErrorFactory?(factory: (message: string) => Error): void;
  };

/**
 * Code of the error every native kernel throws when its arguments disagree with its dimensions (an
 * array too short, an id out of range): a bug in the caller, caught before memory is touched.
 */
export const NATIVE_BAD_ARGUMENT = "NATIVE_BAD_ARGUMENT";

function badArgument(message: string): KlearError {
  return new KlearError(
    NATIVE_BAD_ARGUMENT,
    `native kernel argument: ${message}`,
    "a caller passed arrays that disagree with the dimensions it gave; see the kernel's contract in src/engine/backend.ts",
  );
}

const ADDON_RELATIVE = join("build", "Release", "klear_native.node");

function findAddon(): string | null {
  // KLEAR_NATIVE_ADDON points at a specific build (tests use it to check the not-built error).
  const override = process.env.KLEAR_NATIVE_ADDON;
  if (override) return existsSync(override) ? override : null;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, ADDON_RELATIVE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return null;
}

let addon: Addon | null = null;

function loadAddon(): Addon {
  if (addon) return addon;
  const path = findAddon();
  if (!path) {
    throw new KlearError(
      "NATIVE_NOT_BUILT",
      `the native compute addon (${ADDON_RELATIVE}) is not built`,
      "run `npm run setup` (installs libopenblas-dev and runs `npx node-gyp rebuild`)",
    );
  }
  try {
    addon = createRequire(import.meta.url)(path) as Addon;
    addon.setErrorFactory?.(badArgument);
  } catch (err) {
    throw new KlearError(
      "NATIVE_LOAD_FAILED",
      `the native compute addon at ${path} failed to load: ${(err as Error).message}`,
      "rebuild it with `npm run setup` (or `npx node-gyp rebuild`); it needs Debian libopenblas-dev",
      { cause: err },
    );
  }
  return addon;
}

/** Whether the addon is built and loads (for tests that skip without it). */
export function nativeAvailable(): boolean {
  try {
    loadAddon();
    return true;
  } catch {
    return false;
  }
}

export function nativeInfo(): NativeInfo {
  return loadAddon().info();
}

/**
 * Thread counts: OpenBLAS's pool and klear's kernel pool (0 leaves one unchanged). Fixing them makes
 * results bit-reproducible across runs; sums may differ in the last bits across thread counts.
 */
export function setNativeThreads(blasThreads: number, kernelThreads: number): void {
  loadAddon().setThreads(blasThreads, kernelThreads);
}

/** The addon's conversions, or null when it is not built (or is an older build without them). */
export function getNativeConvert(): NativeConvert | null {
  if (!nativeAvailable()) return null;
  const a = loadAddon();
  const { convertBf16ToF32, convertF16ToF32, convertF32ToBf16, convertF32ToF16, readConvert } = a;
  if (!convertBf16ToF32 || !convertF16ToF32 || !convertF32ToBf16 || !convertF32ToF16 || !readConvert)
    return null;
  return { convertBf16ToF32, convertF16ToF32, convertF32ToBf16, convertF32ToF16, readConvert };
}

let nativeBackend: Backend | null = null;

/** The fast backend: OpenBLAS sgemm plus multi-threaded C++ kernels. */
export function getNativeBackend(): Backend {
  if (nativeBackend) return nativeBackend;
  const a = loadAddon();
  nativeBackend = {
    name: "native",
    gemm: a.gemm,
    rmsnorm: a.rmsnorm,
    rmsnormBackward: a.rmsnormBackward,
    rope: a.rope,
    attention: a.attention,
    attentionBackward: a.attentionBackward,
    kvWrite: a.kvWrite,
    attentionDecode: a.attentionDecode,
    swiglu: a.swiglu,
    swigluBackward: a.swigluBackward,
    add: a.add,
    scale: a.scale,
    embedding: a.embedding,
    embeddingBackward: a.embeddingBackward,
    logSoftmaxGather: a.logSoftmaxGather,
    logSoftmaxGatherBackward: a.logSoftmaxGatherBackward,
    adamw: a.adamw,
    sumSquares: a.sumSquares,
  };
  return nativeBackend;
}
