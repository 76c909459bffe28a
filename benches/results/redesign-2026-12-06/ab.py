import subprocess, json, random, time, statistics, sys
IMPLS=sys.argv[1].split(',')
ROUNDS=int(sys.argv[2])
builds={'before':'/tmp/before-target/release','after':'/work/main/target/release'}
load='/work/main/target/release/ferry-load'
tests=[('depth32',['-c','64','--depth','32']),('c1',['-c','1'])]
res={}
def serve(bin):
    p=subprocess.Popen([bin,'serve','/tmp/abroot','--listen','127.0.0.1:0','-q'],stdout=subprocess.PIPE,stderr=subprocess.DEVNULL,text=True)
    line=p.stdout.readline().strip()
    return p, line.split()[-1]
for r in range(ROUNDS):
    order=[(i,b) for i in IMPLS for b in builds]; random.shuffle(order)
    for impl,b in order:
        p,addr=serve(f"{builds[b]}/ferry-{impl}")
        try:
            for name,args in tests:
                out=subprocess.run([load,addr,'four-k.bin','-d','2','--json']+args,capture_output=True,text=True).stdout
                j=json.loads(out)
                v = j['requests_per_sec']
                if name=='c1': v = j['p50_us']
                res.setdefault((impl,name,b),[]).append(v)
        finally:
            p.terminate(); p.wait()
for impl in IMPLS:
    for name,_ in tests:
        bv=statistics.median(res[(impl,name,'before')]); av=statistics.median(res[(impl,name,'after')])
        print(f"{impl:10} {name:8} before {bv:>10.1f}  after {av:>10.1f}  after/before {av/bv:.3f}  runs b={[round(x) for x in res[(impl,name,'before')]]} a={[round(x) for x in res[(impl,name,'after')]]}")
