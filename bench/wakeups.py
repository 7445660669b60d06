#!/usr/bin/env python3
"""Where a round trip's microseconds go: thread wake-ups from a scheduler trace.

Record a window-1 case with the scheduler's tracepoints, then read the trace:

    perf sched record -a -o sched.data -- \\
        build-rel/bench/rejoin-bench --systems rejoin --window 1 --loss 0 \\
        --duration 3 --no-progress
    perf script -i sched.data -F comm,tid,cpu,time,event,trace > sched.txt
    bench/wakeups.py sched.txt --ops 14000 broker=TID client=TID ...

`--ops` is the number of operations in the trace (rate x duration), so the
figures come out per operation. NAME=TID names a thread (find the tids with
`ps -eLo pid,tid,comm,args` during the run, or from the fork events in the
trace); unnamed threads appear as comm/tid.

Prints, for every waker -> wakee pair seen at least 0.3 times per
operation: wake-ups per operation, and the wake latency (from the waker's
sched_waking to the wakee's switch-in) at p50 and p90, split by whether the
wakee ran on the waker's CPU or on another one. Then, for each named
thread, its turn: from its switch-in after a wake-up to the first thread
it wakes, p50 (the work it does on the round trip's path). Last, what every
thread costs per operation: its time on a CPU (the trace's
sched_stat_runtime events), and the wake-ups and context switches of all
threads together. At window 64, where batches make wake-ups rare, these say
which thread's work per operation sets the pace.
"""
import argparse
import collections
import re
import statistics

LINE = re.compile(r'\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)')
WAKEE = re.compile(r'pid=(\d+) prio=\d+ target_cpu=(\d+)')
NEXT = re.compile(r'next_pid=(\d+)')
RUNTIME = re.compile(r'pid=(\d+) runtime=(\d+)')


def read(path):
    for line in open(path, errors='replace'):
        m = LINE.match(line)
        if m:
            comm, tid, cpu, ts, event, rest = m.groups()
            yield comm, int(tid), int(cpu), float(ts) * 1e6, event, rest


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('trace')
    ap.add_argument('--ops', type=float, required=True)
    ap.add_argument('names', nargs='*', help='NAME=TID')
    args = ap.parse_intermixed_args()
    named = {int(t): n for n, t in (a.split('=') for a in args.names)}
    comm = {}
    pending = {}  # wakee -> (time, waker, same cpu)
    latency = collections.defaultdict(lambda: ([], []))  # same, other
    woken_by = {}  # tid -> time it was switched in after a wake-up
    turns = collections.defaultdict(list)
    on_cpu_ns = collections.Counter()  # tid -> time on a CPU
    wakeups = switches = 0
    for c, tid, cpu, ts, event, rest in read(args.trace):
        comm[tid] = c
        if event == 'sched:sched_stat_runtime':
            m = RUNTIME.search(rest)
            if m:
                on_cpu_ns[int(m.group(1))] += int(m.group(2))
            continue
        if event == 'sched:sched_waking':
            wakeups += 1
            m = WAKEE.search(rest)
            wakee, target = int(m.group(1)), int(m.group(2))
            if wakee not in pending:
                pending[wakee] = (ts, tid, target == cpu)
            if tid in woken_by:
                turns[tid].append(ts - woken_by.pop(tid))
        elif event == 'sched:sched_switch':
            switches += 1
            nxt = int(NEXT.search(rest).group(1))
            if nxt in pending:
                t0, waker, same = pending.pop(nxt)
                latency[(waker, nxt)][0 if same else 1].append(ts - t0)
                woken_by[nxt] = ts

    def name(t):
        return named.get(t, '%s/%d' % (comm.get(t, '?'), t))

    print('%-22s    %-22s %6s  %-22s %-22s' %
          ('waker', 'wakee', 'per op', 'same CPU p50/p90 us',
           'other CPU p50/p90 us'))
    for (a, b), (same, other) in sorted(
            latency.items(), key=lambda kv: -len(kv[1][0]) - len(kv[1][1])):
        n = len(same) + len(other)
        if n / args.ops < 0.3:
            continue
        cells = []
        for vs in (same, other):
            cells.append('%4d%% %5.1f / %5.1f' %
                         (100 * len(vs) // n, statistics.median(vs),
                          pct(vs, 0.9)) if vs else '-')
        print('%-22s -> %-22s %6.2f  %-22s %-22s' %
              (name(a), name(b), n / args.ops, cells[0], cells[1]))
    print('\nturns (switch-in after a wake-up -> the first wake-up it makes)')
    for tid in named:
        if turns[tid]:
            print('  %-22s p50 %5.1f us  p90 %5.1f us  (%d)' %
                  (named[tid], statistics.median(turns[tid]),
                   pct(turns[tid], 0.9), len(turns[tid])))
    print('\nper operation, all threads: %.3f wake-ups, %.3f context switches'
          % (wakeups / args.ops, switches / args.ops))
    if on_cpu_ns:
        print('time on a CPU per operation (sched_stat_runtime)')
        for tid in named:
            print('  %-22s %6.2f us' % (named[tid],
                                        on_cpu_ns[tid] / 1000 / args.ops))
        rest = sum(v for t, v in on_cpu_ns.items() if t not in named)
        print('  %-22s %6.2f us' % ('other threads', rest / 1000 / args.ops))
        print('  %-22s %6.2f us' % ('all',
                                    sum(on_cpu_ns.values()) / 1000 / args.ops))


if __name__ == '__main__':
    main()
