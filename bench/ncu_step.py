# Sums one decode step's kernel times per kernel name from `ncu --csv --metrics gpu__time_duration.sum`
# output (the rows after the last embed_kernel launch, i.e. the last step). Usage: python3 ncu_step.py LOG [--seq]
# (--seq also lists the step's kernels in launch order with their times)
import collections, csv, re, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
hdr = rows[0]; rows = rows[1:]
ki = hdr.index("Kernel Name"); vi = len(hdr) - 1
last = max(i for i, r in enumerate(rows) if "embed_kernel" in r[ki])
per = collections.defaultdict(lambda: [0, 0.0])
seq = []
for r in rows[last:]:
    name = re.sub(r"^void ", "", r[ki])
    name = re.sub(r"\(.*$", "", re.sub(r"<.*$", "", name)).split("::")[-1] or r[ki][:40]
    seq.append((name, float(r[vi].replace(",", "")) / 1000.0))
    per[name][0] += 1; per[name][1] += float(r[vi].replace(",", "")) / 1000.0
tot = sum(v[1] for v in per.values())
print(f"step kernels {sum(v[0] for v in per.values())}, sum {tot:.1f} us")
for k, v in sorted(per.items(), key=lambda kv: -kv[1][1]): print(f"{v[1]:8.1f} us {v[0]:4d}x  {k}")
if "--seq" in sys.argv[2:]:
    for i, (k, t) in enumerate(seq): print(f"{i:4d} {t:8.2f} us  {k}")
