/**
 * The proto3 wire primitives klear writes itself (Tinker request bodies, TensorBoard events): exactly the
 * field kinds those few messages use, so no schema compiler or protobuf dependency is needed.
 */
export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Growable byte buffer with the proto3 primitives. */
export class ProtoWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    this.reserve(10);
    while (v >= 0x80n) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(data.length);
    this.reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  double(field: number, v: number): void {
    this.tag(field, WIRE_I64);
    this.reserve(8);
    new DataView(this.buf.buffer).setFloat64(this.len, v, true);
    this.len += 8;
  }

  float(field: number, v: number): void {
    this.tag(field, WIRE_I32);
    this.reserve(4);
    new DataView(this.buf.buffer).setFloat32(this.len, v, true);
    this.len += 4;
  }

  /** An int64 / uint64 / enum / bool field. */
  int64(field: number, v: number | bigint): void {
    this.tag(field, WIRE_VARINT);
    this.varint(typeof v === "number" ? Math.trunc(v) : v);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}
