// `lsp-offload compare`: read the --metrics-out files of runs on the same data, print held-out loss at a
// common step and the training time each run took to reach a target loss, check the paper's goals,
// and write an HTML page with the curves against steps and against wall time.
import type { Command } from 'commander';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, extname } from 'node:path';
import {
  compareConvergence,
  parseMetricsJsonl,
  renderConvergenceReport,
  renderConvergenceText,
  runCurve,
  type ConvergenceOptions,
  type RunCurve,
} from '@lsp-offload/core';

export interface CompareCommandOptions {
  out?: string;
  json?: string;
  target?: string;
  targetFraction: string;
  reference?: string;
  title: string;
}

/** `label=path`, or a path labelled by its file name without the extension. */
export function parseRunArgument(arg: string): { label: string; path: string } {
  const eq = arg.indexOf('=');
  if (eq > 0) return { label: arg.slice(0, eq), path: arg.slice(eq + 1) };
  return { label: basename(arg, extname(arg)), path: arg };
}

function finite(flag: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`--${flag} must be a number, got '${v}'`);
  return n;
}

export async function compareCommand(files: string[], opts: CompareCommandOptions): Promise<string> {
  const options: ConvergenceOptions = {
    targetFraction: finite('target-fraction', opts.targetFraction),
    ...(opts.target !== undefined && { target: finite('target', opts.target) }),
    ...(opts.reference !== undefined && { reference: opts.reference }),
  };
  const runs: RunCurve[] = [];
  for (const arg of files) {
    const { label, path } = parseRunArgument(arg);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new Error(`cannot read the metrics file ${path}: ${(e as Error).message}`, { cause: e });
    }
    runs.push(runCurve(label, parseMetricsJsonl(text, path), path));
  }
  const summary = compareConvergence(runs, options);
  const written: string[] = [];
  if (opts.out) {
    await mkdir(dirname(opts.out), { recursive: true });
    await writeFile(opts.out, renderConvergenceReport(runs, summary, opts.title));
    written.push(`wrote ${opts.out}`);
  }
  if (opts.json) {
    await mkdir(dirname(opts.json), { recursive: true });
    await writeFile(opts.json, `${JSON.stringify(summary, null, 2)}\n`);
    written.push(`wrote ${opts.json}`);
  }
  return [renderConvergenceText(summary), ...(written.length ? ['', ...written] : [])].join('\n');
}

export function addCompareCommand(program: Command): void {
  program
    .command('compare')
    .description(
      'compare the --metrics-out files of runs on the same data: held-out loss, time to a target loss, the paper goals',
    )
    .argument('<metrics...>', 'metrics files, each as label=file.jsonl or file.jsonl (labelled by its name)')
    .option('--out <file.html>', 'write an HTML page with the loss curves against steps and wall time')
    .option('--json <file.json>', 'write the comparison as JSON')
    .option(
      '--target <loss>',
      "target held-out loss (default: native's loss at --target-fraction of its run)",
    )
    .option('--target-fraction <f>', "where in native's run the default target is taken", '0.8')
    .option(
      '--reference <label>',
      'the run the target and losses are measured against (default: the native run)',
    )
    .option('--title <text>', 'title of the HTML page', 'lsp-offload convergence')
    .action(async (files: string[], opts: CompareCommandOptions) => {
      console.log(await compareCommand(files, opts));
    });
}
