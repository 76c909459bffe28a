import sys, random, statistics, subprocess
sys.path.insert(0,'/work/main/benches')
from pathlib import Path
import trees
tree=sys.argv[2]; impls=sys.argv[3].split(',')
builds={'before':'/tmp/before-target/release','after':'/work/main/target/release'}
addrs={}; procs=[]
for impl in impls:
  for b,d in builds.items():
    p=subprocess.Popen([f'{d}/ferry-{impl}','serve','/tmp/abroot','--listen','127.0.0.1:0','-q'],stdout=subprocess.PIPE,text=True)
    addrs[(impl,b)]=p.stdout.readline().split()[-1]; procs.append(p)
res={}
for r in range(int(sys.argv[1])):
    order=list(addrs); random.shuffle(order)
    for impl,b in order:
        dest=trees.fresh(Path('/tmp/dcopy'))
        binary=f"{builds[b]}/ferry-{impl}"
        import time
        t0=time.perf_counter()
        subprocess.run([binary,'get','-r',addrs[(impl,b)],tree,'-o',str(dest),'-q','--no-progress'],check=True)
        res.setdefault((impl,b),[]).append(time.perf_counter()-t0)
for impl in impls:
    bv=statistics.median(res[(impl,'before')]); av=statistics.median(res[(impl,'after')])
    print(f"{impl:10} {tree} before {bv:.2f} after {av:.2f} after/before {av/bv:.3f} b={[round(x,2) for x in res[(impl,'before')]]} a={[round(x,2) for x in res[(impl,'after')]]}")
for p in procs: p.terminate()
