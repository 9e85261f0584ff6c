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

/** Where the cache keeps a dataset file: a copy put there by hand is used as if downloaded. */
export function hubCachePath(repo: string, file: string, opts: HubOptions = {}): string {
  const cacheDir = opts.cacheDir ?? defaultHubCacheDir();
  return join(cacheDir, "datasets", ...repo.split("/"), opts.revision ?? "main", ...file.split("/"));
}

/** The URL a dataset file is downloaded from. */
export function hubFileUrl(repo: string, file: string, opts: HubOptions = {}): string {
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
  return `${endpoint}/datasets/${repo}/resolve/${encodeURIComponent(opts.revision ?? "main")}/${file.split("/").map(encodeURIComponent).join("/")}`;
}

/** The local path of a dataset file, downloading it when it is not cached yet. */
export async function hubDatasetFile(repo: string, file: string, opts: HubOptions = {}): Promise<string> {
  const cacheDir = opts.cacheDir ?? defaultHubCacheDir();
  const local = hubCachePath(repo, file, opts);
  if (existsSync(local)) return local;
  const offline = opts.offline ?? process.env.HF_HUB_OFFLINE === "1";
  if (offline) {
    throw new KlearError(
      "HUB_OFFLINE",
      `${repo}/${file} is not in the cache ${cacheDir} and HF_HUB_OFFLINE=1`,
      `unset HF_HUB_OFFLINE to download it, or put a copy at ${local}`,
    );
  }
  const url = hubFileUrl(repo, file, opts);
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
      `check the network or HF_ENDPOINT, or put a copy at ${local}`,
      { cause: e },
    );
  }
  if (!res.ok) {
    throw new KlearError(
      "HUB_DOWNLOAD_FAILED",
      `downloading ${url} answered HTTP ${res.status}`,
      res.status === 401 || res.status === 403
        ? "the dataset may be gated: accept its terms on the hub and set HF_TOKEN"
        : `check the dataset name and revision, or put a copy at ${local}`,
    );
  }
  await atomicWriteFile(local, new Uint8Array(await res.arrayBuffer()));
  return local;
}
