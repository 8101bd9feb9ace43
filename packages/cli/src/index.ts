export { buildProgram } from './program.js';
export { renderInfo } from './info.js';
export { formatBytes } from '@lsp-offload/core';
export { tokenizeCommand } from './tokenize.js';
