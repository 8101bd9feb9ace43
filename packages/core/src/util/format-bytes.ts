// Byte counts for people, in binary units: one unit ladder, two precisions.
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

function scaled(bytes: number): { value: number; unit: number } {
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return { value, unit };
}

/** Plans and budget errors: enough digits to compare against a budget (GiB and above: 2, else 1). */
export function formatMemorySize(bytes: number): string {
  const { value, unit } = scaled(bytes);
  const digits = unit === 0 ? 0 : unit >= 3 ? 2 : 1;
  return `${bytes < 0 ? '-' : ''}${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** Short CLI output: one decimal below 100 of a unit, none above. */
export function formatBytes(bytes: number): string {
  const { value, unit } = scaled(bytes);
  return `${bytes < 0 ? '-' : ''}${value >= 100 || unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${UNITS[unit]}`;
}
