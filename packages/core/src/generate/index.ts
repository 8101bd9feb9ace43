export { TextGenerator } from './text-generator.js';
export { generateTokens } from './generator.js';
export type { GenerateOptions, GenerateResult } from './generator.js';
export { KvCache } from './kv-cache.js';
export { chooseToken, samplingProbabilities, checkSamplingOptions, GREEDY } from './sampler.js';
export type { SamplingOptions } from './sampler.js';
export { loadChatTemplate, renderChat } from './chat-template.js';
export type { ChatMessage, RenderChatOptions } from './chat-template.js';
