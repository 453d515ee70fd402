# Top SASS lines by stall samples from `ncu -i REP --page source --csv --print-source sass`. Usage: ncu_src.py CSV [N]
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
h = next(i for i, r in enumerate(rows) if "Source" in r)
hdr = rows[h]; body = [r for r in rows[h + 1:] if len(r) == len(hdr)]
src = hdr.index("Source")
col = next(i for i, c in enumerate(hdr) if c.startswith("Warp Stall Sampling (All"))
ex = next((i for i, c in enumerate(hdr) if c.startswith("Instructions Executed")), None)
num = lambda v: float(v.replace(",", "") or 0)
tot = sum(num(r[col]) for r in body)
print(f"{len(body)} SASS lines, {tot:.0f} stall samples")
for r in sorted(body, key=lambda r: -num(r[col]))[: int(sys.argv[2]) if len(sys.argv) > 2 else 30]:
    print(f"{num(r[col]) / tot * 100:5.1f}%  ex={r[ex] if ex is not None else '?':>8}  {r[src][:110]}")
