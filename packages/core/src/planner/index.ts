export { planMemory } from './plan-memory.js';
export type { MemoryPlan, MemoryPlanItem, CategoryBytes } from './plan-memory.js';
export { DEFAULT_LEAD_BLOCKS } from './plan-input.js';
export type { PlanInput, ResolvedPlanInput } from './plan-input.js';
export type { HostMemoryPlan, HostMemoryItem } from './host-memory.js';
export { checkBudget, suggestChanges, describeOverBudget, MemoryBudgetError } from './budget.js';
export type { BudgetSuggestion } from './budget.js';
export { planTrainerMemory } from './trainer-plan.js';
