// From files to packed train and held-out rows, as the trainer calls it.
import { describe, expect, it } from 'vitest';
import { DataFormatError, IGNORE_INDEX, describeDataset, prepareDataset } from '../../src/data/index.js';
import { EOS, dataFile, gpt2StyleTokenizer, jsonl, llamaStyleTokenizer } from './helpers.js';

const qa = (i: number): { prompt: string; response: string } => ({ prompt: `Q${i}?`, response: ` A${i}.` });

describe('prepareDataset', () => {
  it('reads, tokenizes, holds out by the seed and packs both parts', async () => {
    const file = dataFile('qa.jsonl', jsonl(...Array.from({ length: 40 }, (_, i) => qa(i))));
    const options = {
      files: [file],
      tokenizer: llamaStyleTokenizer(),
      seqLen: 32,
      seed: 5,
      heldOut: { count: 4 },
    };
    const { train, heldOut, report } = await prepareDataset(options);
    expect(report.records).toEqual({ text: 0, 'prompt-response': 40, alpaca: 0 });
    expect([report.train.examples, report.heldOut.examples]).toEqual([36, 4]);
    expect([train.seqLen, heldOut.seqLen]).toEqual([32, 32]);
    // Padding is EOS by default, with no loss.
    expect(train.padTokenId).toBe(EOS);
    // Every example ends with a learned EOS: one per example in each part.
    const learnedEos = (labels: Int32Array): number => labels.filter((l) => l === EOS).length;
    expect([learnedEos(train.labels), learnedEos(heldOut.labels)]).toEqual([36, 4]);
    // Deterministic: the same seed holds out the same examples.
    const again = await prepareDataset(options);
    expect(Array.from(again.heldOut.inputIds)).toEqual(Array.from(heldOut.inputIds));
    expect(again.train.fingerprint()).toBe(train.fingerprint());
    const other = await prepareDataset({ ...options, seed: 6 });
    expect(Array.from(other.heldOut.inputIds)).not.toEqual(Array.from(heldOut.inputIds));
    expect(describeDataset(report)).toContain('train: 36 examples in');
  });

  it('evaluates on every example of evalFiles and keeps the held-out split of files for refits', async () => {
    const trainFile = dataFile('train.jsonl', jsonl(...Array.from({ length: 9 }, (_, i) => qa(i))));
    const evalFile = dataFile('eval.jsonl', jsonl(qa(100), qa(101), qa(102)));
    const options = { tokenizer: llamaStyleTokenizer(), seqLen: 16, seed: 3, layout: 'concat' as const };
    const split = { ...options, files: [trainFile], heldOut: { count: 2 } };
    const { train, heldOut, evaluation, report } = await prepareDataset({ ...split, evalFiles: [evalFile] });
    expect([report.train.examples, report.heldOut.examples, report.evaluation?.examples]).toEqual([7, 2, 3]);
    expect(report.files).toEqual([trainFile, evalFile]);
    expect(describeDataset(report)).toContain('evaluation (own files): 3 examples in');
    // train and held-out rows as without evalFiles; the evaluation rows as the eval file packed alone
    const without = await prepareDataset(split);
    expect(train.fingerprint()).toBe(without.train.fingerprint());
    expect(Array.from(heldOut.inputIds)).toEqual(Array.from(without.heldOut.inputIds));
    expect(without.evaluation).toBe(without.heldOut);
    expect(without.report.evaluation).toBeUndefined();
    const alone = await prepareDataset({ ...options, files: [evalFile], heldOut: { count: 0 } });
    expect(Array.from(evaluation.inputIds)).toEqual(Array.from(alone.train.inputIds));
    await expect(prepareDataset({ ...split, evalFiles: [dataFile('e.jsonl', '')] })).rejects.toThrow(
      /no usable records in .*e\.jsonl/,
    );
  });

  it('mixes .txt and .jsonl files', async () => {
    const { train, report } = await prepareDataset({
      files: [dataFile('a.txt', 'one\n\ntwo\n\nthree'), dataFile('b.jsonl', jsonl(qa(1), { text: 'four' }))],
      tokenizer: gpt2StyleTokenizer(),
      seqLen: 8,
      seed: 1,
      heldOut: { count: 0 },
      layout: 'concat',
      overlong: 'split',
    });
    expect(report.records).toEqual({ text: 4, 'prompt-response': 1, alpaca: 0 });
    expect(report.heldOut.examples).toBe(0);
    expect(train.stats.padTokens).toBeLessThan(8);
  });

  it('stops at invalid lines by default, naming file and line', async () => {
    const file = dataFile('bad.jsonl', `${JSON.stringify(qa(1))}\n{"prompt": 1, "response": "x"}\n`);
    const run = prepareDataset({ files: [file], tokenizer: llamaStyleTokenizer(), seqLen: 16, seed: 1 });
    await expect(run).rejects.toThrow(DataFormatError);
    await expect(run).rejects.toThrow(`${file}:2: the field "prompt" is a number, not a string`);
  });

  it("with invalidLines 'skip', counts what it left out, tokenizer failures included", async () => {
    // A tokenizer without an unknown token cannot encode "é": that line is invalid like a malformed one.
    const strict = llamaStyleTokenizer();
    const noUnk = {
      eosTokenId: strict.eosTokenId,
      encode: (text: string, o: { addSpecialTokens: boolean }): number[] => {
        if (text.includes('é')) throw new Error('the text piece "é" has no token id');
        return strict.encode(text, o);
      },
    };
    const lines = [
      JSON.stringify(qa(1)),
      'nope',
      JSON.stringify({ text: 'café' }),
      JSON.stringify(qa(2)),
      JSON.stringify(qa(3)),
    ];
    const file = dataFile('mixed.jsonl', lines.join('\n'));
    const { report } = await prepareDataset({
      files: [file],
      tokenizer: noUnk,
      seqLen: 16,
      seed: 1,
      heldOut: { count: 1 },
      invalidLines: 'skip',
    });
    expect(report.invalidLines).toBe(2);
    expect(report.firstInvalidLines.map((b) => [b.line, b.problem.split(':')[0]])).toEqual([
      [2, 'not valid JSON'],
      [3, 'cannot tokenize'],
    ]);
    expect(report.train.examples + report.heldOut.examples).toBe(3);
    expect(describeDataset(report)).toMatch(/skipped 2 invalid line\(s\), first: .*mixed\.jsonl:2/);
  });

  it('reports truncation of examples longer than the sequence length', async () => {
    const long = { prompt: 'short', response: ' ' + 'x'.repeat(40) };
    const { train, report } = await prepareDataset({
      files: [dataFile('long.jsonl', jsonl(long, qa(1)))],
      tokenizer: llamaStyleTokenizer(),
      seqLen: 16,
      seed: 1,
      heldOut: { count: 0 },
    });
    expect(report.train.truncatedExamples).toBe(1);
    expect(report.train.truncatedLabelTokens).toBeGreaterThan(20);
    expect(train.rowCount).toBe(2);
    expect(Array.from(train.rowLabels(0)).filter((l) => l !== IGNORE_INDEX).length).toBe(16 - 1 - 6);
    expect(describeDataset(report)).toContain('truncated 1 example(s)');
  });

  it('refuses data with no usable record', async () => {
    await expect(
      prepareDataset({
        files: [dataFile('x.jsonl', 'nope\n')],
        tokenizer: llamaStyleTokenizer(),
        seqLen: 8,
        seed: 1,
        invalidLines: 'skip',
      }),
    ).rejects.toThrow(/no usable records/);
  });
});
