export { systemInfo } from './system-info.js';
export type { SystemInfo } from './system-info.js';
export * from './hf/index.js';
