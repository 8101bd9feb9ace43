export { GpuContext, GpuError, requestAdapter, DAWN_TOGGLES, OPTIONAL_FEATURES } from './device.js';
export type { GpuOptions, AdapterReport } from './device.js';
export { createStorageBuffer, uploadFloat32, readFloat32 } from './buffers.js';
export { dispatchGrid } from './dispatch.js';
export { encodeAxpby, axpbyReference } from './kernels/axpby.js';
