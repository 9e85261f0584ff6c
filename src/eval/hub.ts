import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { atomicWriteFile } from "../util/atomic.js";
import { KlearError } from "../util/errors.js";

/**
 * Downloads dataset files from the Hugging Face hub into a local cache, once. `HF_ENDPOINT` points it at
 * a mirror (or the tests' fake hub), `HF_TOKEN` authenticates, `HF_HUB_OFFLINE=1` uses the cache only.
 */
export interface HubOptions {
  /** Cache root (default `$KLEAR_CACHE/hub`, else `~/.cache/klear/hub`). */
  cacheDir?: string;
  /** Hub base URL (default `$HF_ENDPOINT`, else https://huggingface.co). */
  endpoint?: string;
  revision?: string;
  token?: string;
  offline?: boolean;
}

export function defaultHubCacheDir(): string {
  return process.env.KLEAR_CACHE
    ? join(process.env.KLEAR_CACHE, "hub")
    : join(homedir(), ".cache", "klear", "hub");
}

/** The local path of a dataset file, downloading it when it is not cached yet. */
export async function hubDatasetFile(repo: string, file: string, opts: HubOptions = {}): Promise<string> {
  const revision = opts.revision ?? "main";
  const cacheDir = opts.cacheDir ?? defaultHubCacheDir();
  const local = join(cacheDir, "datasets", ...repo.split("/"), revision, ...file.split("/"));
  if (existsSync(local)) return local;
  const offline = opts.offline ?? process.env.HF_HUB_OFFLINE === "1";
  if (offline) {
    throw new KlearError(
      "HUB_OFFLINE",
      `${repo}/${file} is not in the cache ${cacheDir} and HF_HUB_OFFLINE=1`,
      "unset HF_HUB_OFFLINE to download it, or pass --data PATH with a local copy",
    );
  }
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
  const url = `${endpoint}/datasets/${repo}/resolve/${encodeURIComponent(revision)}/${file.split("/").map(encodeURIComponent).join("/")}`;
  const token = opts.token ?? process.env.HF_TOKEN;
  let res: Response;
  try {
    res = await fetch(url, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      redirect: "follow",
    });
  } catch (e) {
    throw new KlearError(
      "HUB_UNREACHABLE",
      `cannot download ${url}: ${(e as Error).message}`,
      "check the network or HF_ENDPOINT, or pass --data PATH with a local copy of the benchmark",
      { cause: e },
    );
  }
  if (!res.ok) {
    throw new KlearError(
      "HUB_DOWNLOAD_FAILED",
      `downloading ${url} answered HTTP ${res.status}`,
      res.status === 401 || res.status === 403
        ? "the dataset may be gated: accept its terms on the hub and set HF_TOKEN"
        : "check the dataset name and revision, or pass --data PATH with a local copy",
    );
  }
  await atomicWriteFile(local, new Uint8Array(await res.arrayBuffer()));
  return local;
}
