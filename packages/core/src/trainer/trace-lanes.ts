// Perfetto drops (or misdraws) complete events that overlap on one track without nesting, and transfers of
// different layers do overlap. Spans of one thread are spread over as many lanes (tracks) as their
// overlaps need: each span goes to the first lane whose last span has ended.

export interface TimedSpan {
  startMs: number;
  durMs: number;
}

/** The lane of each span (0, 1, ...), in the order given; spans in one lane never overlap. */
export function assignLanes(spans: readonly TimedSpan[]): number[] {
  const order = spans.map((_, i) => i).sort((a, b) => spans[a]!.startMs - spans[b]!.startMs || a - b);
  const laneEnds: number[] = [];
  const lanes = new Array<number>(spans.length);
  for (const i of order) {
    const s = spans[i]!;
    let lane = laneEnds.findIndex((end) => end <= s.startMs);
    if (lane < 0) lane = laneEnds.push(0) - 1;
    laneEnds[lane] = s.startMs + s.durMs;
    lanes[i] = lane;
  }
  return lanes;
}
