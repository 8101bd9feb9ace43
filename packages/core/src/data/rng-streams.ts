// One PCG32 stream per use of the run's seed, so that (for example) changing the held-out size does
// not change the shuffle order, and the demo task's data does not depend on either.
export const DATA_RNG_STREAMS = {
  heldOutSplit: 0x5b11_7001,
  shuffle: 0x5b11_7002,
  demoTrain: 0x5b11_7003,
  demoEval: 0x5b11_7004,
} as const;
