// The slice of the WebAssembly JS API this backend uses, typed locally: the project compiles
// without the DOM lib (which is where TypeScript declares WebAssembly), and declaring the global
// here could clash with a project that adds it.

export interface WasmMemory { readonly buffer: ArrayBuffer | SharedArrayBuffer; grow(deltaPages: number): number; }
/** A compiled module (opaque; structured-cloneable to workers). */
export interface WasmModule { readonly __wasmModule?: never; }
export interface WasmInstance { readonly exports: Record<string, unknown>; }
type Imports = Record<string, Record<string, unknown>>;

interface WasmApi {
  Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Instance: new (m: WasmModule, imports: Imports) => WasmInstance;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  instantiate(m: WasmModule, imports: Imports): Promise<WasmInstance>;
  validate(bytes: Uint8Array): boolean;
}

export const Wasm: WasmApi | undefined = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
