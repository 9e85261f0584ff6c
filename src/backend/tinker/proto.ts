/**
 * The few protobuf messages of the Tinker wire protocol (package `tinker_public`, as the open-source
 * `tinker` SDK defines them): the forward_backward request body, and the forward/forward_backward and
 * sample results that `retrieve_future` returns. A hand-written proto3 codec for exactly these fields,
 * little-endian raw arrays inside `bytes` fields as the protocol specifies (tokens int32, values float32,
 * offsets int64).
 */
import { KlearError } from "../../util/errors.js";
import { ProtoWriter, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT } from "../../util/protobuf.js";

/** Tensor dtypes on the public wire (DType enum). */
export const DTYPE_FLOAT32 = 1;
export const DTYPE_INT64 = 2;
export const DTYPE_INT32 = 3;
export const DTYPE_BFLOAT16 = 4;

// Field numbers of tinker_public.proto.
const FB_MODEL_ID = 1;
const FB_SEQ_ID = 2;
const FB_DATA = 3;
const FB_LOSS_FN = 4;
const FB_LOSS_FN_CONFIG = 5;
const FB_FORWARD_ONLY = 6;
const DATUM_MODEL_INPUT = 1;
const DATUM_LOSS_FN_INPUTS = 2;
const CHUNK_ENCODED_TEXT = 1;
const TEXT_TOKENS = 1;
const TENSOR_DENSE = 1;
const TENSOR_DTYPE = 3;
const TENSOR_SHAPE = 4;

/** A loss input: int64 (token ids) or float32 (weights, log-probs, advantages), one value per position. */
export type WireTensor =
  | { dtype: "int64"; data: ArrayLike<number> }
  | { dtype: "float32"; data: ArrayLike<number> };

export interface WireDatum {
  /** The model input tokens (one encoded-text chunk). */
  tokens: ArrayLike<number>;
  lossFnInputs: Record<string, WireTensor>;
}

export interface ForwardBackwardRequestMessage {
  modelId: string;
  seqId: number;
  data: readonly WireDatum[];
  lossFn: string;
  lossFnConfig?: Record<string, number>;
  forwardOnly: boolean;
}

function int32Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setInt32(i * 4, values[i], true);
  return out;
}

function tensorBytes(t: WireTensor): Uint8Array {
  const n = t.data.length;
  if (t.dtype === "float32") {
    const out = new Uint8Array(n * 4);
    const view = new DataView(out.buffer);
    for (let i = 0; i < n; i++) view.setFloat32(i * 4, t.data[i], true);
    return out;
  }
  const out = new Uint8Array(n * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n; i++) view.setBigInt64(i * 8, BigInt(t.data[i]), true);
  return out;
}

function encodeTensor(t: WireTensor): Uint8Array {
  const w = new ProtoWriter();
  w.bytes(TENSOR_DENSE, tensorBytes(t));
  w.tag(TENSOR_DTYPE, WIRE_VARINT);
  w.varint(t.dtype === "float32" ? DTYPE_FLOAT32 : DTYPE_INT64);
  const shape = new ProtoWriter();
  shape.varint(t.data.length);
  w.bytes(TENSOR_SHAPE, shape.finish()); // packed repeated int64
  return w.finish();
}

function mapEntry(key: string, value: (w: ProtoWriter) => void): Uint8Array {
  const w = new ProtoWriter();
  w.string(1, key);
  value(w);
  return w.finish();
}

/** Serialises a `tinker_public.ForwardBackwardRequest`. */
export function encodeForwardBackwardRequest(req: ForwardBackwardRequestMessage): Uint8Array {
  const w = new ProtoWriter();
  w.string(FB_MODEL_ID, req.modelId);
  w.tag(FB_SEQ_ID, WIRE_VARINT);
  w.varint(req.seqId);
  for (const datum of req.data) {
    const d = new ProtoWriter();
    const chunk = new ProtoWriter();
    const text = new ProtoWriter();
    text.bytes(TEXT_TOKENS, int32Bytes(datum.tokens));
    chunk.bytes(CHUNK_ENCODED_TEXT, text.finish());
    d.bytes(DATUM_MODEL_INPUT, chunk.finish());
    for (const [name, tensor] of Object.entries(datum.lossFnInputs)) {
      d.bytes(
        DATUM_LOSS_FN_INPUTS,
        mapEntry(name, (e) => e.bytes(2, encodeTensor(tensor))),
      );
    }
    w.bytes(FB_DATA, d.finish());
  }
  w.string(FB_LOSS_FN, req.lossFn);
  for (const [key, value] of Object.entries(req.lossFnConfig ?? {})) {
    w.bytes(
      FB_LOSS_FN_CONFIG,
      mapEntry(key, (e) => e.double(2, value)),
    );
  }
  if (req.forwardOnly) {
    w.tag(FB_FORWARD_ONLY, WIRE_VARINT);
    w.varint(1);
  }
  return w.finish();
}

/** One decoded field: a number for varint/fixed fields, a byte slice for length-delimited ones. */
interface Field {
  field: number;
  wire: number;
  int: bigint;
  bytes: Uint8Array;
  fixed: DataView | null;
}

function malformed(what: string): KlearError {
  return new KlearError(
    "TINKER_PROTO_INVALID",
    `the Tinker server's protobuf answer is malformed (${what})`,
    "check that the server speaks the tinker SDK 0.25 wire protocol (SkyRL 0.4.0 or hosted Tinker)",
  );
}

function* fields(buf: Uint8Array): Generator<Field> {
  let pos = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw malformed("truncated varint");
      const b = buf[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return result;
      shift += 7n;
      if (shift > 70n) throw malformed("varint too long");
    }
  };
  while (pos < buf.length) {
    const key = Number(readVarint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === WIRE_VARINT) {
      yield { field, wire, int: readVarint(), bytes: new Uint8Array(0), fixed: null };
    } else if (wire === WIRE_LEN) {
      const n = Number(readVarint());
      if (pos + n > buf.length) throw malformed("truncated field");
      yield { field, wire, int: 0n, bytes: buf.subarray(pos, pos + n), fixed: null };
      pos += n;
    } else if (wire === WIRE_I64 || wire === WIRE_I32) {
      const n = wire === WIRE_I64 ? 8 : 4;
      if (pos + n > buf.length) throw malformed("truncated fixed field");
      yield {
        field,
        wire,
        int: 0n,
        bytes: buf.subarray(pos, pos + n),
        fixed: new DataView(buf.buffer, buf.byteOffset + pos, n),
      };
      pos += n;
    } else {
      throw malformed(`unsupported wire type ${wire}`);
    }
  }
}

const utf8 = new TextDecoder();

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Little-endian float32 (or bfloat16, widened) or integer bytes → numbers. */
function decodeArray(bytes: Uint8Array, dtype: number): Float64Array {
  const dv = view(bytes);
  const size = dtype === DTYPE_INT64 ? 8 : dtype === DTYPE_BFLOAT16 ? 2 : 4;
  if (bytes.length % size !== 0) throw malformed(`array of ${bytes.length} bytes for dtype ${dtype}`);
  const out = new Float64Array(bytes.length / size);
  for (let i = 0; i < out.length; i++) {
    if (dtype === DTYPE_FLOAT32) out[i] = dv.getFloat32(i * 4, true);
    else if (dtype === DTYPE_INT32) out[i] = dv.getInt32(i * 4, true);
    else if (dtype === DTYPE_INT64) out[i] = Number(dv.getBigInt64(i * 8, true));
    else if (dtype === DTYPE_BFLOAT16) {
      const f = new DataView(new ArrayBuffer(4));
      f.setUint32(0, dv.getUint16(i * 2, true) << 16);
      out[i] = f.getFloat32(0);
    } else throw malformed(`unknown dtype ${dtype}`);
  }
  return out;
}

export interface ForwardBackwardOutputMessage {
  lossFnOutputType: string;
  /** Per datum, per output name (e.g. `logprobs`, `elementwise_loss`), the flat values. */
  outputs: Record<string, Float64Array>[];
  metrics: Record<string, number>;
}

interface BatchedTensor {
  data: Uint8Array;
  offsets: Float64Array;
  dtype: number;
}

function decodeBatchedTensor(buf: Uint8Array): BatchedTensor {
  const t: BatchedTensor = { data: new Uint8Array(0), offsets: new Float64Array(0), dtype: DTYPE_FLOAT32 };
  for (const f of fields(buf)) {
    if (f.field === 1) t.data = f.bytes;
    else if (f.field === 2) t.offsets = decodeArray(f.bytes, DTYPE_INT64);
    else if (f.field === 3) t.dtype = Number(f.int);
  }
  return t;
}

/** Decodes a `tinker_public.ForwardBackwardOutput` (results of forward and forward_backward). */
export function decodeForwardBackwardOutput(buf: Uint8Array): ForwardBackwardOutputMessage {
  const out: ForwardBackwardOutputMessage = { lossFnOutputType: "", outputs: [], metrics: {} };
  for (const f of fields(buf)) {
    if (f.field === 1) out.lossFnOutputType = utf8.decode(f.bytes);
    else if (f.field === 2) {
      const record: Record<string, BatchedTensor> = {};
      let numDatums = 0;
      for (const r of fields(f.bytes)) {
        if (r.field === 2) {
          let key = "";
          let value: BatchedTensor | null = null;
          for (const e of fields(r.bytes)) {
            if (e.field === 1) key = utf8.decode(e.bytes);
            else if (e.field === 2) value = decodeBatchedTensor(e.bytes);
          }
          if (value) record[key] = value;
        } else if (r.field === 3) numDatums = Number(r.int);
      }
      const names = Object.keys(record);
      if (numDatums === 0 && names.length > 0) numDatums = record[names[0]].offsets.length - 1;
      const base = out.outputs.length;
      for (let i = 0; i < numDatums; i++) out.outputs.push({});
      for (const name of names) {
        const t = record[name];
        if (t.offsets.length !== numDatums + 1)
          throw malformed(`field ${name} has ${t.offsets.length} offsets`);
        for (let i = 0; i < numDatums; i++) {
          out.outputs[base + i][name] = decodeArray(t.data.subarray(t.offsets[i], t.offsets[i + 1]), t.dtype);
        }
      }
    } else if (f.field === 3) {
      let key = "";
      let value = Number.NaN;
      for (const e of fields(f.bytes)) {
        if (e.field === 1) key = utf8.decode(e.bytes);
        else if (e.field === 2 && e.fixed) value = e.fixed.getFloat64(0, true);
      }
      out.metrics[key] = value;
    }
  }
  return out;
}

export interface SampledSequenceMessage {
  stopReason: "stop" | "length";
  tokens: number[];
  /** Present when the server returned them. */
  logprobs: number[] | null;
}

/** Decodes a `tinker_public.SampleResponse` (its sequences; prompt log-probs are not used by klear). */
export function decodeSampleResponse(buf: Uint8Array): SampledSequenceMessage[] {
  const sequences: SampledSequenceMessage[] = [];
  for (const f of fields(buf)) {
    if (f.field !== 1) continue;
    const seq: SampledSequenceMessage = { stopReason: "stop", tokens: [], logprobs: null };
    for (const s of fields(f.bytes)) {
      if (s.field === 1) seq.stopReason = s.int === 1n ? "length" : "stop";
      else if (s.field === 2) seq.tokens = Array.from(decodeArray(s.bytes, DTYPE_INT32));
      else if (s.field === 3) seq.logprobs = Array.from(decodeArray(s.bytes, DTYPE_FLOAT32));
    }
    sequences.push(seq);
  }
  return sequences;
}

/** Encoders for the answers a fake server gives (tests only use these; klear never sends them). */
export function encodeForwardBackwardOutput(
  outputs: readonly Record<string, ArrayLike<number>>[],
): Uint8Array {
  const w = new ProtoWriter();
  w.string(1, "ArrayRecord");
  const record = new ProtoWriter();
  const names = outputs.length > 0 ? Object.keys(outputs[0]) : [];
  for (const name of names) {
    const arrays = outputs.map((o) => tensorBytes({ dtype: "float32", data: o[name] }));
    const offsets = [0];
    for (const a of arrays) offsets.push(offsets[offsets.length - 1] + a.length);
    const data = new Uint8Array(offsets[offsets.length - 1]);
    for (let i = 0; i < arrays.length; i++) data.set(arrays[i], offsets[i]);
    const t = new ProtoWriter();
    t.bytes(1, data);
    t.bytes(2, tensorBytes({ dtype: "int64", data: offsets }));
    t.tag(3, WIRE_VARINT);
    t.varint(DTYPE_FLOAT32);
    record.bytes(
      2,
      mapEntry(name, (e) => e.bytes(2, t.finish())),
    );
  }
  record.tag(3, WIRE_VARINT);
  record.varint(outputs.length);
  w.bytes(2, record.finish());
  return w.finish();
}

export function encodeSampleResponse(sequences: readonly SampledSequenceMessage[]): Uint8Array {
  const w = new ProtoWriter();
  for (const s of sequences) {
    const seq = new ProtoWriter();
    seq.tag(1, WIRE_VARINT);
    seq.varint(s.stopReason === "length" ? 1 : 0);
    seq.bytes(2, int32Bytes(s.tokens));
    if (s.logprobs) seq.bytes(3, tensorBytes({ dtype: "float32", data: s.logprobs }));
    w.bytes(1, seq.finish());
  }
  return w.finish();
}

/** Decodes a ForwardBackwardRequest (the fake server in tests reads what klear sent). */
export function decodeForwardBackwardRequest(buf: Uint8Array): ForwardBackwardRequestMessage {
  const req: ForwardBackwardRequestMessage = {
    modelId: "",
    seqId: 0,
    data: [],
    lossFn: "",
    forwardOnly: false,
  };
  const data: WireDatum[] = [];
  const config: Record<string, number> = {};
  for (const f of fields(buf)) {
    if (f.field === FB_MODEL_ID) req.modelId = utf8.decode(f.bytes);
    else if (f.field === FB_SEQ_ID) req.seqId = Number(BigInt.asIntN(32, f.int));
    else if (f.field === FB_LOSS_FN) req.lossFn = utf8.decode(f.bytes);
    else if (f.field === FB_FORWARD_ONLY) req.forwardOnly = f.int !== 0n;
    else if (f.field === FB_LOSS_FN_CONFIG) {
      let key = "";
      for (const e of fields(f.bytes)) {
        if (e.field === 1) key = utf8.decode(e.bytes);
        else if (e.field === 2 && e.fixed) config[key] = e.fixed.getFloat64(0, true);
      }
    } else if (f.field === FB_DATA) {
      const datum: WireDatum = { tokens: [], lossFnInputs: {} };
      for (const d of fields(f.bytes)) {
        if (d.field === DATUM_MODEL_INPUT) {
          for (const c of fields(d.bytes)) {
            if (c.field !== CHUNK_ENCODED_TEXT) continue;
            for (const t of fields(c.bytes))
              if (t.field === TEXT_TOKENS) datum.tokens = decodeArray(t.bytes, DTYPE_INT32);
          }
        } else if (d.field === DATUM_LOSS_FN_INPUTS) {
          let key = "";
          let dense: Uint8Array = new Uint8Array(0);
          let dtype = DTYPE_FLOAT32;
          for (const e of fields(d.bytes)) {
            if (e.field === 1) key = utf8.decode(e.bytes);
            else if (e.field === 2) {
              for (const t of fields(e.bytes)) {
                if (t.field === TENSOR_DENSE) dense = t.bytes;
                else if (t.field === TENSOR_DTYPE) dtype = Number(t.int);
              }
            }
          }
          datum.lossFnInputs[key] = {
            dtype: dtype === DTYPE_INT64 ? "int64" : "float32",
            data: decodeArray(dense, dtype),
          };
        }
      }
      data.push(datum);
    }
  }
  return { ...req, data, ...(Object.keys(config).length > 0 ? { lossFnConfig: config } : {}) };
}
