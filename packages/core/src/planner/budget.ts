// Checking a memory plan against a GPU budget. Over budget, the error says by how much, where the peak
// is and what holds it, and lists changes that WOULD fit, each found by planning again with the change.
import { MEMORY_CATEGORIES } from '@lsp-offload/gpu-dawn';
import { formatMemorySize } from '../util/format-bytes.js';
import type { PlanInput, ResolvedPlanInput } from './plan-input.js';
import { planMemory, type MemoryPlan } from './plan-memory.js';

export interface BudgetSuggestion {
  /** The change in `lsp-offload train/plan` flags, e.g. `--batch 2` or `drop --no-checkpointing`. */
  change: string;
  /** The plan input with the change made. */
  input: PlanInput;
  /** Its predicted peak (at most the budget). */
  peakBytes: number;
}

export class MemoryBudgetError extends Error {
  override name = 'MemoryBudgetError';

  constructor(
    message: string,
    readonly plan: MemoryPlan,
    readonly budgetBytes: number,
    readonly suggestions: readonly BudgetSuggestion[],
  ) {
    super(message);
  }
}

/** Throw a MemoryBudgetError if the plan's peak exceeds the budget. */
export function checkBudget(plan: MemoryPlan, budgetBytes: number): void {
  if (plan.peakBytes <= budgetBytes) return;
  const suggestions = suggestChanges(plan, budgetBytes);
  throw new MemoryBudgetError(
    describeOverBudget(plan, budgetBytes, suggestions),
    plan,
    budgetBytes,
    suggestions,
  );
}

export function describeOverBudget(
  plan: MemoryPlan,
  budgetBytes: number,
  suggestions: readonly BudgetSuggestion[],
): string {
  const i = plan.input;
  const run =
    `${i.mode} mode, batch ${i.batch} x seq ${i.seqLen}, ${i.weightDtype} weights, ${i.precision} precision, ` +
    `${i.checkpointing ? 'with' : 'without'} checkpointing${i.mode === 'lsp' ? `, rank ${i.rank}, nnz ${i.nnz}` : ''}`;
  const parts = MEMORY_CATEGORIES.filter((c) => plan.atPeak[c] > 0)
    .sort((a, b) => plan.atPeak[b] - plan.atPeak[a])
    .map((c) => `${c} ${formatMemorySize(plan.atPeak[c])}`)
    .join(', ');
  const lines = [
    `GPU memory budget ${formatMemorySize(budgetBytes)} is too small for this run (${run}): its predicted peak ` +
      `is ${formatMemorySize(plan.peakBytes)} (${formatMemorySize(plan.peakBytes - budgetBytes)} over) at '${plan.peakPhase}' ` +
      `[${parts}].`,
  ];
  if (suggestions.length) {
    lines.push('Changes that would fit (predicted peak):');
    const width = Math.max(...suggestions.map((s) => s.change.length));
    for (const s of suggestions) lines.push(`  ${s.change.padEnd(width)}  ${formatMemorySize(s.peakBytes)}`);
  } else {
    const floor = planMemory(plan.config, {
      ...savingsOf(restaged(plan.input, budgetBytes)),
      batch: 1,
      seqLen: 1,
    });
    lines.push(
      `Nothing fits: even one token with every saving (lsp, f16 weights, mixed precision, checkpointing) needs ` +
        `${formatMemorySize(floor.peakBytes)} (weights alone ${formatMemorySize(floor.atPeak.weights)}).`,
    );
  }
  return lines.join('\n');
}

/** A planned run's input with its staging rings left for the planner to size again, within the budget. */
function restaged(input: ResolvedPlanInput, budgetBytes: number): PlanInput {
  const out: PlanInput = { ...input, budgetBytes };
  delete out.stagingSlots;
  return out;
}

/** The same run with every memory saving the flags offer (its rank and nnz stay). */
function savingsOf(input: PlanInput): PlanInput {
  return { ...input, mode: 'lsp', weightDtype: 'f16', precision: 'mixed', checkpointing: true };
}

const peakOf = (plan: MemoryPlan, input: PlanInput): number => planMemory(plan.config, input).peakBytes;

/** Largest integer in [lo, hi] (stepping by `step` from lo) whose input fits, or undefined. Peaks grow with it. */
function largestFitting(
  lo: number,
  hi: number,
  step: number,
  fits: (v: number) => boolean,
): number | undefined {
  if (hi < lo || !fits(lo)) return undefined;
  let a = 0; // lo + a*step fits
  let b = Math.floor((hi - lo) / step) + 1; // lo + b*step is out of range or does not fit
  while (b - a > 1) {
    const m = (a + b) >> 1;
    if (fits(lo + m * step)) a = m;
    else b = m;
  }
  return lo + a * step;
}

/** Changes to the run that bring its peak within the budget: single changes first, then a combination. */
export function suggestChanges(plan: MemoryPlan, budgetBytes: number): BudgetSuggestion[] {
  const base = restaged(plan.input, budgetBytes);
  const out: BudgetSuggestion[] = [];
  const tryChange = (change: string, input: PlanInput): void => {
    const peakBytes = peakOf(plan, input);
    if (peakBytes <= budgetBytes) out.push({ change, input, peakBytes });
  };
  if (!base.checkpointing) tryChange('drop --no-checkpointing', { ...base, checkpointing: true });
  if (base.weightDtype === 'f32') tryChange('--dtype f16', { ...base, weightDtype: 'f16' });
  // (mixed precision needs shader-f16, as f16 weights do; the trainer says so where it is missing)
  if (base.precision !== 'mixed') tryChange('--precision mixed', { ...base, precision: 'mixed' });
  if (base.mode !== 'lsp') tryChange('--mode lsp', { ...base, mode: 'lsp' });
  if (base.mode === 'native') tryChange('--mode zero', { ...base, mode: 'zero' });
  out.push(...shrinkSuggestions(plan, base, '', budgetBytes));
  if (out.length) return out;
  // no single change fits: every saving at once, then the largest batch / sequence that fits with it
  const saving = savingsOf(base);
  const changes = [
    base.mode !== 'lsp' ? '--mode lsp' : '',
    base.weightDtype === 'f32' ? '--dtype f16' : '',
    base.precision !== 'mixed' ? '--precision mixed' : '',
    base.checkpointing ? '' : 'drop --no-checkpointing',
  ]
    .filter(Boolean)
    .join(', ');
  tryChange(changes, saving);
  if (!out.length) out.push(...shrinkSuggestions(plan, saving, changes, budgetBytes));
  return out;
}

/** The largest batch, sequence length and (lsp) rank below the current ones that fit, one at a time. */
function shrinkSuggestions(
  plan: MemoryPlan,
  input: PlanInput,
  prefix: string,
  budgetBytes: number,
): BudgetSuggestion[] {
  const out: BudgetSuggestion[] = [];
  const fits =
    (change: (v: number) => Partial<PlanInput>) =>
    (v: number): boolean =>
      peakOf(plan, { ...input, ...change(v) }) <= budgetBytes;
  const add = (flag: string, change: Partial<PlanInput>): void => {
    const changed = { ...input, ...change };
    out.push({
      change: prefix ? `${prefix}, ${flag}` : flag,
      input: changed,
      peakBytes: peakOf(plan, changed),
    });
  };
  const batch = largestFitting(
    1,
    input.batch - 1,
    1,
    fits((v) => ({ batch: v })),
  );
  if (batch !== undefined) add(`--batch ${batch}`, { batch });
  // sequence lengths and ranks in multiples of 64 where possible (tiles and the loss chunk like them)
  const seqStep = input.seqLen > 64 ? 64 : 1;
  const seq = largestFitting(
    seqStep,
    input.seqLen - 1,
    seqStep,
    fits((v) => ({ seqLen: v })),
  );
  if (seq !== undefined) add(`--seq ${seq}`, { seqLen: seq });
  if (input.mode === 'lsp' && !input.exactProjectors) {
    const { rank, nnz } = plan.input;
    const rankStep = rank > 64 ? 64 : 1;
    const lowest = Math.max(rankStep, Math.ceil(nnz / rankStep) * rankStep);
    const d = largestFitting(
      lowest,
      rank - 1,
      rankStep,
      fits((v) => ({ rank: v })),
    );
    if (d !== undefined) add(`--rank ${d}`, { rank: d });
  }
  return out;
}
