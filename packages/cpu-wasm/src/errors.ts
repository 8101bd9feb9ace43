// Errors callers may want to tell apart (everything else is a TypeError or RangeError with a message).

export class OptimizerDestroyedError extends Error {
  constructor(what: string) {
    super(`${what}: the optimizer was destroyed (destroy() was called)`);
    this.name = 'OptimizerDestroyedError';
  }
}

export interface NonFiniteReport {
  name: string;
  /** Elements of the gradient that are NaN or +-infinity. */
  count: number;
}

/** Thrown by step() under `nonFinite: 'throw'`; no parameter or state was changed. */
export class NonFiniteGradientError extends Error {
  constructor(readonly tensors: readonly NonFiniteReport[]) {
    const list = tensors
      .slice(0, 8)
      .map((t) => `${t.name} (${t.count})`)
      .join(', ');
    super(
      `non-finite gradients in ${tensors.length} tensor(s): ${list}${tensors.length > 8 ? ', ...' : ''}; ` +
        'nothing was updated',
    );
    this.name = 'NonFiniteGradientError';
  }
}
