// Figures of the bench tables: three significant digits, so small values on a slow adapter (a CPU one)
// print as 0.00123, not 0.0; '-' for a missing value.
export function sig(x, width = 0) {
  const s =
    x === undefined || x === null || Number.isNaN(x)
      ? '-'
      : x === 0
        ? '0'
        : Math.abs(x) >= 100
          ? x.toFixed(0)
          : x.toPrecision(3);
  return s.padStart(width);
}
