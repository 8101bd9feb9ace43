export { buildProgram } from './program.js';
export { renderInfo } from './info.js';
export { formatBytes } from './format.js';
export { tokenizeCommand } from './tokenize.js';
