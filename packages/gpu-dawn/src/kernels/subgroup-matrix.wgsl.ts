// The subgroup-matrix (tensor-core) operations the tensor-core kernels are written against, in two
// interchangeable implementations:
//  - real: WGSL's chromium_experimental_subgroup_matrix builtins (Vulkan cooperative matrices);
//  - emulated: plain WGSL in which every invocation of a subgroup holds the whole fragment as an array
//    and does the whole product, and the subgroup's lane 0 writes stores. Slow, but it runs on any adapter
//    with subgroups (llvmpipe in CI), so the kernels' indexing, masking, softmax and barriers are tested
//    there; the real builtins are checked on a GPU by the device check scripts.
// Plus the f16 workgroup tiles those kernels stage operands in: filled with 16-byte stores through a
// WGSL buffer view (`buffer_view` language feature) or, without it, 8 scalar f16 stores per 16 bytes.

/** A fragment shape: Left is m x k, Right k x n, the f32 accumulator m x n. */
export interface FragmentShape {
  m: number;
  n: number;
  k: number;
}

/** Where a fragment is loaded from or stored to. */
export interface MatrixSource {
  /** Pointer expression the real builtins take: `&name` for a module-scope array, or a pointer `let`. */
  ptr: string;
  /** Emulation: a module-scope array is accessed by name; a pointer `let` is passed with this type. */
  name: string;
  pointerType?: string;
  /** Element type stored there (f16 or f32). */
  element: 'f16' | 'f32';
}

export interface SubgroupMatrixOps {
  readonly emulated: boolean;
  readonly shape: FragmentShape;
  /** Directives: enables (and diagnostics) this implementation needs. */
  readonly directives: string;
  /** Module-scope declarations: the Left/Right/Acc aliases and, emulated, the helpers used so far. */
  declarations(): string;
  /** Statements at the top of the entry point, before any op (uses `lane`); ends with a barrier if any. */
  readonly prologue: string;
  left(src: MatrixSource, offset: string, stride: string, colMajor: boolean): string;
  right(src: MatrixSource, offset: string, stride: string, colMajor: boolean): string;
  /** Load an f32 accumulator (row-major). */
  acc(src: MatrixSource, offset: string, stride: string): string;
  /** acc + l r. */
  mma(l: string, r: string, acc: string): string;
  /** Statement: store an accumulator row-major (converted to the destination's element type). */
  store(dst: MatrixSource, offset: string, value: string, stride: string): string;
  /** A matrix times a scalar. */
  scale(value: string, s: string): string;
  /** A zero accumulator. */
  zero(): string;
}

/** Real subgroup-matrix builtins (tensor cores). */
export function realSubgroupMatrixOps(shape: FragmentShape): SubgroupMatrixOps {
  const layout = (colMajor: boolean) => (colMajor ? 'col_major' : 'row_major');
  return {
    emulated: false,
    shape,
    // Fragment offsets depend on the subgroup id, which the uniformity analysis (workgroup scope) cannot
    // prove subgroup-uniform; they are, by construction.
    directives: `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);`,
    declarations: () => `alias Left = subgroup_matrix_left<f16, ${shape.k}, ${shape.m}>;
alias Right = subgroup_matrix_right<f16, ${shape.n}, ${shape.k}>;
alias Acc = subgroup_matrix_result<f32, ${shape.n}, ${shape.m}>;`,
    prologue: '',
    left: (src, off, stride, cm) => `subgroupMatrixLoad<Left, ${layout(cm)}>(${src.ptr}, ${off}, ${stride})`,
    right: (src, off, stride, cm) =>
      `subgroupMatrixLoad<Right, ${layout(cm)}>(${src.ptr}, ${off}, ${stride})`,
    acc: (src, off, stride) => `subgroupMatrixLoad<Acc, row_major>(${src.ptr}, ${off}, ${stride})`,
    mma: (l, r, acc) => `subgroupMatrixMultiplyAccumulate(${l}, ${r}, ${acc})`,
    store: (dst, off, value, stride) =>
      `subgroupMatrixStore<row_major>(${dst.ptr}, ${off}, ${value}, ${stride});`,
    scale: (value, s) => `subgroupMatrixScalarMultiply(${value}, ${s})`,
    zero: () => 'Acc()',
  };
}

/**
 * Emulated subgroup matrices: each invocation holds whole fragments and computes whole products; stores
 * are done by lane 0 of the subgroup (`laneVar` must name the subgroup_invocation_id in scope). A
 * fragment value is a handle (u32) to a slot of a private array: every op call site gets its own slot,
 * so fragments never travel by value. Passing 256-float arrays by value, and loops with constant bounds,
 * made CPU compilers (llvmpipe) take minutes per kernel; slots in memory and loop bounds read from
 * workgroup memory keep it to seconds.
 */
export function emulatedSubgroupMatrixOps(shape: FragmentShape, laneVar = 'lane'): SubgroupMatrixOps {
  const helpers = new Map<string, string>();
  const { m, n, k } = shape;
  const size = Math.max(m * k, k * n, m * n);
  let slots = 0;
  const slot = () => `${slots++}u`;
  const dim = (x: number) => `emuDim${x}`;
  const dims = [...new Set([m, n, k])];
  const access = (src: MatrixSource) => (src.pointerType ? '(*tile)' : src.name);
  const param = (src: MatrixSource) => (src.pointerType ? `tile: ${src.pointerType}, ` : '');
  const arg = (src: MatrixSource) => (src.pointerType ? `${src.name}, ` : '');
  const loader = (kind: string, rows: number, cols: number, src: MatrixSource, cm: boolean) => {
    const fn = `emuLoad${kind}_${src.name}_${cm ? 'c' : 'r'}`;
    if (!helpers.has(fn)) {
      const at = cm ? 'j * stride + i' : 'i * stride + j';
      helpers.set(
        fn,
        `fn ${fn}(h: u32, ${param(src)}off: u32, stride: u32) -> u32 {
  for (var e = 0u; e < ${dim(rows)} * ${dim(cols)}; e++) {
    let i = e / ${cols}u;
    let j = e % ${cols}u;
    emuPool[h * ${size}u + e] = f32(${access(src)}[off + ${at}]);
  }
  return h;
}`,
      );
    }
    return fn;
  };
  return {
    emulated: true,
    shape,
    directives: 'enable f16;\nenable subgroups;',
    prologue: `if (${laneVar} == 0u) { ${dims.map((x) => `${dim(x)} = ${x}u;`).join(' ')} }
  workgroupBarrier();`,
    declarations: () =>
      [
        ...dims.map((x) => `var<workgroup> ${dim(x)}: u32;`),
        `var<private> emuPool: array<f32, ${Math.max(slots, 1) * size}>;`,
        'alias Left = u32;',
        'alias Right = u32;',
        'alias Acc = u32;',
        `fn emuZero(h: u32) -> u32 {
  for (var i = 0u; i < ${dim(m)} * ${dim(n)}; i++) { emuPool[h * ${size}u + i] = 0.0; }
  return h;
}`,
        `fn emuMma(l: u32, r: u32, c: u32) -> u32 {
  for (var e = 0u; e < ${dim(m)} * ${dim(n)}; e++) {
    let i = e / ${n}u;
    let j = e % ${n}u;
    var s = emuPool[c * ${size}u + e];
    for (var x = 0u; x < ${dim(k)}; x++) {
      s = fma(emuPool[l * ${size}u + i * ${k}u + x], emuPool[r * ${size}u + x * ${n}u + j], s);
    }
    emuPool[c * ${size}u + e] = s;
  }
  return c;
}`,
        `fn emuScale(h: u32, a: u32, s: f32) -> u32 {
  for (var i = 0u; i < ${dim(m)} * ${dim(n)}; i++) { emuPool[h * ${size}u + i] = emuPool[a * ${size}u + i] * s; }
  return h;
}`,
        ...helpers.values(),
      ].join('\n'),
    zero: () => `emuZero(${slot()})`,
    left: (src, off, stride, cm) => `${loader('L', m, k, src, cm)}(${slot()}, ${arg(src)}${off}, ${stride})`,
    right: (src, off, stride, cm) => `${loader('R', k, n, src, cm)}(${slot()}, ${arg(src)}${off}, ${stride})`,
    acc: (src, off, stride) => `${loader('A', m, n, src, false)}(${slot()}, ${arg(src)}${off}, ${stride})`,
    mma: (l, r, acc) => `emuMma(${l}, ${r}, ${acc})`,
    store: (dst, off, value, stride) => {
      const fn = `emuStore_${dst.name}`;
      if (!helpers.has(fn)) {
        helpers.set(
          fn,
          `fn ${fn}(${param(dst)}off: u32, h: u32, stride: u32, lane: u32) {
  if (lane != 0u) { return; }
  for (var e = 0u; e < ${dim(m)} * ${dim(n)}; e++) {
    ${access(dst)}[off + (e / ${n}u) * stride + e % ${n}u] = ${dst.element}(emuPool[h * ${size}u + e]);
  }
}`,
        );
      }
      return `${fn}(${arg(dst)}${off}, ${value}, ${stride}, ${laneVar});`;
    },
    scale: (value, s) => `emuScale(${slot()}, ${value}, ${s})`,
  };
}

export function subgroupMatrixOps(shape: FragmentShape, emulate: boolean): SubgroupMatrixOps {
  return emulate ? emulatedSubgroupMatrixOps(shape) : realSubgroupMatrixOps(shape);
}

/** An f16 tile in workgroup memory, filled 16 bytes (8 halves) at a time. */
export interface F16Tile {
  /** Module-scope declaration (and, without a buffer view, its 16-byte store helper). */
  decl: string;
  /** Statements at the top of the entry point (the buffer views). */
  init: string;
  /** The tile as a fragment source. */
  src: MatrixSource;
  /** Statement: store a vec4<u32> (8 halves) at a half offset that is a multiple of 8. */
  store16(halfOffset: string, value: string): string;
  /** Expression / statement for one half. */
  read(index: string): string;
  write(index: string, value: string): string;
}

/** The `requires` directive a kernel using buffer-view tiles needs. */
export const BUFFER_VIEW_DIRECTIVE = 'requires buffer_view;';

export function f16Tile(name: string, halves: number, bufferView: boolean): F16Tile {
  if (halves % 8) throw new Error(`f16 tile ${name}: ${halves} halves is not a multiple of 8`);
  if (bufferView) {
    const type = `ptr<workgroup, array<f16, ${halves}>>`;
    return {
      decl: `var<workgroup> ${name}_bytes: buffer<${halves * 2}>;`,
      init: `let ${name} = bufferView<array<f16, ${halves}>>(&${name}_bytes, 0u);
  let ${name}_16 = bufferView<array<vec4<u32>, ${halves / 8}>>(&${name}_bytes, 0u);`,
      src: { ptr: name, name, pointerType: type, element: 'f16' },
      store16: (o, v) => `(*${name}_16)[(${o}) >> 3u] = ${v};`,
      read: (i) => `(*${name})[${i}]`,
      write: (i, v) => `(*${name})[${i}] = ${v};`,
    };
  }
  return {
    decl: `var<workgroup> ${name}: array<f16, ${halves}>;
fn store16_${name}(o: u32, v: vec4<u32>) {
  let h0 = bitcast<vec2<f16>>(v.x);
  let h1 = bitcast<vec2<f16>>(v.y);
  let h2 = bitcast<vec2<f16>>(v.z);
  let h3 = bitcast<vec2<f16>>(v.w);
  ${name}[o] = h0.x; ${name}[o + 1u] = h0.y; ${name}[o + 2u] = h1.x; ${name}[o + 3u] = h1.y;
  ${name}[o + 4u] = h2.x; ${name}[o + 5u] = h2.y; ${name}[o + 6u] = h3.x; ${name}[o + 7u] = h3.y;
}`,
    init: '',
    src: { ptr: `&${name}`, name, element: 'f16' },
    store16: (o, v) => `store16_${name}(${o}, ${v});`,
    read: (i) => `${name}[${i}]`,
    write: (i, v) => `${name}[${i}] = ${v};`,
  };
}

/** An f32 scratch array in workgroup memory as a fragment source/destination. */
export function f32Scratch(name: string, floats: number): { decl: string; src: MatrixSource } {
  return {
    decl: `var<workgroup> ${name}: array<f32, ${floats}>;`,
    src: { ptr: `&${name}`, name, element: 'f32' },
  };
}
