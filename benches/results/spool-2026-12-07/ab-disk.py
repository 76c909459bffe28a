# A/B of before/after builds on disk: get -r of the trees and one 1 GiB get, from /tmp/freshshare
import sys, random, statistics, subprocess, time, os
sys.path.insert(0,'/work/main/benches')
from pathlib import Path
import trees
share='/tmp/freshshare'; impls=sys.argv[2].split(','); tests=sys.argv[3].split(',')
builds={'before':'/tmp/before-target/release','after':'/work/main/target/release'}
addrs={}; procs=[]
for i in impls:
  for b,d in builds.items():
    p=subprocess.Popen([f'{d}/ferry-{i}','serve',share,'--listen','127.0.0.1:0','-q'],stdout=subprocess.PIPE,text=True)
    addrs[(i,b)]=p.stdout.readline().split()[-1]; procs.append(p)
res={}
runs=[(i,b,t) for i in impls for b in builds for t in tests]
for r in range(int(sys.argv[1])):
    for i,b,t in random.sample(runs,len(runs)):
        dest=trees.fresh(Path('/tmp/dcopy'))
        bin=f'{builds[b]}/ferry-{i}'
        if t.startswith('tree'):
            args=[bin,'get','-r',addrs[(i,b)],t,'-o',str(dest),'-q','--no-progress']
        elif t=='get-disk':
            args=[bin,'get',addrs[(i,b)],'big.bin','-o',str(dest/'big.bin'),'-q','--no-progress']
        else:
            args=[bin,'get',addrs[(i,b)],'big.bin','-o','/dev/null','-q','--no-progress']
        t0=time.perf_counter(); subprocess.run(args,check=True); took=time.perf_counter()-t0
        res.setdefault((i,t,b),[]).append(took)
        if t.startswith('tree'): subprocess.run(["diff","-rq",share+"/"+t,str(dest/t)],check=True)
for i in impls:
  for t in tests:
    bv=statistics.median(res[(i,t,'before')]); av=statistics.median(res[(i,t,'after')])
    print(f"{i:10} {t:11} s before {bv:.2f} after {av:.2f} after/before {av/bv:.3f} b={[round(x,2) for x in res[(i,t,'before')]]} a={[round(x,2) for x in res[(i,t,'after')]]}")
for p in procs: p.terminate()
