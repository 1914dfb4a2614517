// A restricted reader and a small writer for Python pickles, enough for what `torch.save` stores:
// dicts, lists, tuples, numbers, strings, bools, None and tensors. Nothing is ever executed: the
// reader interprets the opcodes as data and allows only a fixed set of "globals", each of which it
// builds itself (an OrderedDict is a Map, `torch._utils._rebuild_tensor_v2` a TorchTensorRef, ...).
// A pickle naming any other global is refused with the name, the way
// `torch.load(weights_only=True)` refuses it.
//
// Opcodes: pickletools' table (CPython Lib/pickletools.py), protocols 0-5.

import { OpenELMError } from '../core/errors.js';

/** A Python tuple (kept apart from lists so a writer can give it back as a tuple). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** A Python float that holds an integral value (so the writer emits a float, not an int). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** Where a tensor's bytes are: storage record `key` of `dtype`, `numel` elements. */
export interface StorageRef {
  readonly key: string;
  readonly dtype: TorchDType;
  readonly numel: number;
  readonly location: string;
}

/** A tensor as torch pickles it: a view (offset, shape, stride in elements) of a storage. */
export class TorchTensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

export type PyValue =
  | null | boolean | number | bigint | string | Uint8Array | PyFloat
  | PyValue[] | PyTuple | Map<PyKey, PyValue> | TorchTensorRef;
export type PyKey = string | number | bigint | boolean | null;

export type TorchDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** torch's typed-storage class names (the persistent ids of `torch.save`) and their element types. */
export const STORAGE_DTYPES: Record<string, TorchDType> = {
  DoubleStorage: 'F64', FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

export const DTYPE_BYTES: Record<TorchDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** The callables a torch checkpoint may name. Anything else is refused. */
const REDUCERS = new Set([
  'collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state', 'torch.Size', 'builtins.set', 'builtins.frozenset',
  'numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar', 'numpy.dtype', 'torch.device',
]);

class Global {
  constructor(readonly name: string) {}
}
class Mark {}
/** A numpy dtype being built (`numpy.dtype(str, align, copy)` then BUILD with its state). */
class NumpyDType {
  byteOrder = '<';
  constructor(readonly code: string) {}
}

type Stack = (PyValue | Global | Mark | NumpyDType | StorageClass)[];
class StorageClass {
  constructor(readonly dtype: TorchDType) {}
}

export interface UnpickleOptions {
  /** Named in messages. */
  source: string;
}

const asIntList = (v: unknown, what: string, src: string): number[] => {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : null;
  if (!items || items.some((x) => typeof x !== 'number' || !Number.isInteger(x))) throw new OpenELMError('pickle', `${src}: ${what} is not a tuple of integers`);
  return items as number[];
};

/** Parse a pickle into plain values. Throws OpenELMError on anything but tensors and containers. */
export function unpickle(data: Uint8Array, opts: UnpickleOptions): PyValue {
  const src = opts.source;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const latin1 = new TextDecoder('latin1');
  let p = 0;
  const stack: Stack = [];
  const marks: number[] = [];
  const memo = new Map<number, Stack[number]>();
  const fail = (msg: string): never => { throw new OpenELMError('pickle', `${src}: ${msg}`); };
  const need = (n: number) => { if (p + n > data.length) fail('pickle data is truncated'); };
  const u8 = () => { need(1); return data[p++]; };
  const u16 = () => { need(2); const v = dv.getUint16(p, true); p += 2; return v; };
  const i32 = () => { need(4); const v = dv.getInt32(p, true); p += 4; return v; };
  const u32 = () => { need(4); const v = dv.getUint32(p, true); p += 4; return v; };
  const u64 = () => { need(8); const v = dv.getBigUint64(p, true); p += 8; if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('a length is implausibly large'); return Number(v); };
  const bytes = (n: number) => { need(n); const b = data.subarray(p, p + n); p += n; return b; };
  const line = () => { const e = data.indexOf(0x0a, p); if (e < 0) fail('pickle data is truncated'); const s = latin1.decode(data.subarray(p, e)); p = e + 1; return s; };
  const str = (b: Uint8Array) => { try { return utf8.decode(b); } catch { return fail('a string is not valid UTF-8'); } };
  const pop = () => { if (stack.length === 0) fail('pickle stack underflow'); return stack.pop()!; };
  const popMark = (): Stack => {
    const m = marks.pop();
    if (m === undefined) fail('pickle MARK missing');
    return stack.splice(m!);
  };
  const top = () => { if (stack.length === 0) fail('pickle stack underflow'); return stack[stack.length - 1]; };
  const internal = (v: unknown): boolean => v instanceof Global || v instanceof Mark || v instanceof NumpyDType || v instanceof StorageClass;
  const value = (v: Stack[number], what: string): PyValue => {
    const u: unknown = v;
    if (internal(u) || (u instanceof PyTuple && u.items.some(internal))) return fail(`${what} is not a plain value`);
    return v as PyValue;
  };
  // Tuples may carry a storage class or numpy dtype on their way into a persistent id or a call.
  const item = (v: Stack[number]): PyValue => {
    if (v instanceof Global || v instanceof Mark) return fail('a tuple item is not a plain value');
    return v as PyValue;
  };
  const key = (v: Stack[number]): PyKey => {
    if (v === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof v)) return v as PyKey;
    if (v instanceof PyTuple) return JSON.stringify(v.items.map((x) => (typeof x === 'bigint' ? x.toString() : x)));
    return fail('a dict key is not a string, number or tuple');
  };
  const setItems = (d: Stack[number], kvs: Stack) => {
    if (!(d instanceof Map)) fail('SETITEM on something that is not a dict');
    if (kvs.length % 2) fail('odd number of dict items');
    for (let i = 0; i < kvs.length; i += 2) (d as Map<PyKey, PyValue>).set(key(kvs[i]), value(kvs[i + 1], 'a dict value'));
  };
  const global = (module: string, name: string): Global | StorageClass => {
    const full = `${module}.${name}`;
    if (module === 'torch' && Object.hasOwn(STORAGE_DTYPES, name)) return new StorageClass(STORAGE_DTYPES[name]);
    if (!REDUCERS.has(full)) fail(`the pickle asks for ${full}; only tensors and plain containers are allowed (nothing was executed)`);
    return new Global(full);
  };
  const call = (f: Stack[number], args: Stack[number]): Stack[number] => {
    if (!(f instanceof Global)) return fail('REDUCE on something that is not an allowed callable');
    if (!(args instanceof PyTuple)) return fail(`arguments of ${f.name} are not a tuple`);
    const a = args.items;
    switch (f.name) {
      case 'collections.OrderedDict':
        if (a.length !== 0) fail('OrderedDict with arguments is not supported');
        return new Map<PyKey, PyValue>();
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, size, stride] = a;
        if (!(storage instanceof TorchTensorRef) || storage.shape.length !== 1 || storage.shape[0] !== -1) fail('a tensor does not point at a storage');
        if (typeof offset !== 'number') fail('a tensor offset is not an integer');
        return new TorchTensorRef((storage as TorchTensorRef).storage, offset as number, asIntList(size, 'a tensor size', src), asIntList(stride, 'a tensor stride', src));
      }
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        if (!(a[0] instanceof TorchTensorRef)) fail('a parameter does not hold a tensor');
        return a[0];
      case 'torch.Size':
        return new PyTuple(asIntList(a[0] ?? new PyTuple([]), 'torch.Size', src));
      case 'torch.device':
        if (typeof a[0] !== 'string') fail('torch.device needs a string');
        return a[0];
      case 'builtins.set':
      case 'builtins.frozenset':
        return Array.isArray(a[0]) ? a[0].slice() : a[0] instanceof PyTuple ? a[0].items.slice() : [];
      case 'numpy.dtype':
        if (typeof a[0] !== 'string') fail('numpy.dtype needs a type code');
        return new NumpyDType(a[0] as string) as unknown as PyValue;
      case 'numpy.core.multiarray.scalar':
      case 'numpy._core.multiarray.scalar': {
        const dt = a[0] as unknown;
        const raw = a[1];
        if (!(dt instanceof NumpyDType) || !(raw instanceof Uint8Array)) return fail('numpy scalar without dtype and bytes');
        const b = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        const le = dt.byteOrder !== '>';
        const kinds: Record<string, () => number | bigint | boolean> = {
          f8: () => b.getFloat64(0, le), f4: () => b.getFloat32(0, le), i8: () => b.getBigInt64(0, le),
          i4: () => b.getInt32(0, le), u8: () => b.getBigUint64(0, le), u4: () => b.getUint32(0, le), b1: () => raw[0] !== 0,
        };
        const k = kinds[dt.code];
        if (!k || raw.length < Number(dt.code.slice(1))) return fail(`numpy scalar of type ${dt.code} is not supported`);
        const v = k();
        return typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
    }
    return fail(`the pickle asks for ${f.name}; only tensors and plain containers are allowed (nothing was executed)`);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: { const v = u8(); if (v > 5) fail(`pickle protocol ${v} is not supported`); break; } // PROTO
      case 0x95: u64(); break; // FRAME: framing is transparent here
      case 0x2e: { // STOP
        const v = pop();
        return value(v, 'the pickled object');
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x8a: case 0x8b: { // LONG1, LONG4: little-endian two's complement
        const n = op === 0x8a ? u8() : u32();
        const b = bytes(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x49: { // INT (text)
        const s = line();
        stack.push(s === '00' ? false : s === '01' ? true : Number.parseInt(s, 10));
        break;
      }
      case 0x4c: stack.push(Number.parseInt(line().replace(/L$/, ''), 10)); break; // LONG (text)
      case 0x46: stack.push(Number.parseFloat(line())); break; // FLOAT (text)
      case 0x47: { need(8); stack.push(dv.getFloat64(p, false)); p += 8; break; } // BINFLOAT (big-endian)
      case 0x58: stack.push(str(bytes(u32()))); break; // BINUNICODE
      case 0x8c: stack.push(str(bytes(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(bytes(u64()))); break; // BINUNICODE8
      case 0x55: stack.push(latin1.decode(bytes(u8()))); break; // SHORT_BINSTRING (Python 2 str)
      case 0x54: stack.push(latin1.decode(bytes(u32()))); break; // BINSTRING
      case 0x43: stack.push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      case 0x42: stack.push(bytes(u32()).slice()); break; // BINBYTES
      case 0x8e: stack.push(bytes(u64()).slice()); break; // BINBYTES8
      case 0x56: stack.push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))); break; // UNICODE (text)
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x29: stack.push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x8f: stack.push([]); break; // EMPTY_SET: read as a list
      case 0x6c: stack.push(popMark().map((v) => value(v, 'a list item'))); break; // LIST
      case 0x74: stack.push(new PyTuple(popMark().map(item))); break; // TUPLE
      case 0x85: stack.push(new PyTuple([item(pop())])); break; // TUPLE1
      case 0x86: { const b = item(pop()), a = item(pop()); stack.push(new PyTuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = item(pop()), b = item(pop()), a = item(pop()); stack.push(new PyTuple([a, b, c])); break; } // TUPLE3
      case 0x64: { const d = new Map<PyKey, PyValue>(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x61: { const v = value(pop(), 'a list item'); const l = top(); if (!Array.isArray(l)) fail('APPEND to something that is not a list'); (l as PyValue[]).push(v); break; } // APPEND
      case 0x65: { const items = popMark().map((v) => value(v, 'a list item')); const l = top(); if (!Array.isArray(l)) fail('APPENDS to something that is not a list'); (l as PyValue[]).push(...items); break; } // APPENDS
      case 0x90: { const items = popMark().map((v) => value(v, 'a set item')); const l = top(); if (!Array.isArray(l)) fail('ADDITEMS to something that is not a set'); (l as PyValue[]).push(...items); break; } // ADDITEMS
      case 0x73: { const v = pop(), k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kvs = popMark(); setItems(top(), kvs); break; } // SETITEMS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x70: memo.set(Number.parseInt(line(), 10), top()); break; // PUT (text)
      case 0x68: case 0x6a: case 0x67: { // BINGET, LONG_BINGET, GET
        const i = op === 0x68 ? u8() : op === 0x6a ? u32() : Number.parseInt(line(), 10);
        if (!memo.has(i)) fail(`pickle memo ${i} is missing`);
        stack.push(memo.get(i)!);
        break;
      }
      case 0x63: { const module = line(), name = line(); stack.push(global(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(), f = pop(); stack.push(call(f, args)); break; } // REDUCE
      case 0x81: { const args = pop(), cls = pop(); stack.push(call(cls, args)); break; } // NEWOBJ
      case 0x62: { // BUILD: only the state torch attaches to containers (`_metadata` of a state dict) and numpy dtypes
        const state = pop();
        const obj = top();
        if (obj instanceof NumpyDType) {
          if (state instanceof PyTuple && typeof state.items[1] === 'string') obj.byteOrder = state.items[1];
          break;
        }
        if (!(obj instanceof Map) && !(obj instanceof TorchTensorRef)) fail('BUILD on an object that is not a dict or tensor');
        break;
      }
      case 0x51: { // BINPERSID: ('storage', StorageClass, key, location, numel)
        const pid = pop();
        const t = pid instanceof PyTuple ? pid.items as unknown[] : null;
        if (t?.[0] !== 'storage' || !(t[1] instanceof StorageClass) || typeof t[2] !== 'string' || typeof t[4] !== 'number') {
          fail('a persistent id is not a torch storage');
        }
        const ref: StorageRef = { dtype: (t![1] as StorageClass).dtype, key: t![2] as string, location: String(t![3]), numel: t![4] as number };
        // A storage is a 1-D view with shape [-1] until _rebuild_tensor_v2 gives it its real view.
        stack.push(new TorchTensorRef(ref, 0, [-1], [1]));
        break;
      }
      default:
        fail(`pickle opcode 0x${op.toString(16).padStart(2, '0')} is not supported in a checkpoint (only plain data and tensors are)`);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Writer: protocol 2, the layout torch.save produces.

const STORAGE_CLASS: Record<TorchDType, string> = Object.fromEntries(Object.entries(STORAGE_DTYPES).map(([k, v]) => [v, k])) as Record<TorchDType, string>;

export class Pickler {
  private out: number[] = [];
  private readonly enc = new TextEncoder();

  private op(...b: number[]) { for (const x of b) this.out.push(x); }
  private u32(v: number) { this.op(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff); }
  private text(s: string) { for (const c of this.enc.encode(s)) this.out.push(c); }
  private global(module: string, name: string) { this.op(0x63); this.text(`${module}\n${name}\n`); }
  private str(s: string) { const b = this.enc.encode(s); this.op(0x58); this.u32(b.length); for (const c of b) this.out.push(c); }

  private int(v: number | bigint) {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 256) { this.op(0x4b, v); return; }
    if (typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31) { this.op(0x4a); this.u32(v >>> 0); return; }
    let x = BigInt(v);
    const b: number[] = [];
    for (;;) {
      b.push(Number(x & 0xffn));
      x >>= 8n;
      if ((x === 0n && !(b[b.length - 1] & 0x80)) || (x === -1n && b[b.length - 1] & 0x80)) break;
    }
    this.op(0x8a, b.length, ...b);
  }

  private float(v: number) {
    const b = new DataView(new ArrayBuffer(8));
    b.setFloat64(0, v, false);
    this.op(0x47);
    for (let i = 0; i < 8; i++) this.out.push(b.getUint8(i));
  }

  value(v: PyValue): void {
    if (v === null) this.op(0x4e);
    else if (v === true) this.op(0x88);
    else if (v === false) this.op(0x89);
    else if (typeof v === 'bigint') this.int(v);
    else if (typeof v === 'number') { if (Number.isInteger(v)) this.int(v); else this.float(v); }
    else if (v instanceof PyFloat) this.float(v.value);
    else if (typeof v === 'string') this.str(v);
    else if (v instanceof Uint8Array) { this.op(0x42); this.u32(v.length); for (const c of v) this.out.push(c); }
    else if (Array.isArray(v)) { this.op(0x5d); if (v.length) { this.op(0x28); for (const x of v) this.value(x); this.op(0x65); } }
    else if (v instanceof PyTuple) { this.op(0x28); for (const x of v.items) this.value(x); this.op(0x74); }
    else if (v instanceof Map) {
      // Key order is kept; a state dict is an OrderedDict as torch writes it.
      this.global('collections', 'OrderedDict'); this.op(0x29, 0x52);
      if (v.size) { this.op(0x28); for (const [k, x] of v) { this.value(k as PyValue); this.value(x); } this.op(0x75); }
    } else if (v instanceof TorchTensorRef) {
      this.global('torch._utils', '_rebuild_tensor_v2');
      this.op(0x28, 0x28);
      this.str('storage'); this.global('torch', STORAGE_CLASS[v.storage.dtype]); this.str(v.storage.key); this.str(v.storage.location); this.int(v.storage.numel);
      this.op(0x74, 0x51);
      this.int(v.offset);
      this.value(new PyTuple(v.shape));
      this.value(new PyTuple(v.stride));
      this.op(0x89);
      this.global('collections', 'OrderedDict'); this.op(0x29, 0x52);
      this.op(0x74, 0x52);
    } else throw new OpenELMError('pickle', `cannot pickle ${Object.prototype.toString.call(v)}`);
  }

  /** The complete pickle of `v` (PROTO 2 ... STOP). */
  static dumps(v: PyValue): Uint8Array {
    const p = new Pickler();
    p.op(0x80, 2);
    p.value(v);
    p.op(0x2e);
    return Uint8Array.from(p.out);
  }
}
